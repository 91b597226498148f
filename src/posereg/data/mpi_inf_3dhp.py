"""MPI-INF-3DHP: the community npz format (as Human3.6M's) plus cameras_train.pkl / cameras_test.pkl.

* The npz holds 17 joints in this order (:data:`NPZ_JOINTS`): head_top, neck, r/l shoulder, elbow,
  wrist, r/l hip, knee, ankle, root (pelvis), spine, head. They are reordered at load into the
  posereg ``h36m17`` set by name (the 3DHP ``head`` is H36M-17's joint 9, as in mmpose), so 3DHP
  mixes with Human3.6M directly. The official 3D PCK / AUC subset is the first 14 npz joints
  (everything but root, spine and head), which :class:`posereg.metrics.PCK3D` finds by name.
* Image names: ``S4_Seq2_Cam0_001033.jpg`` (training: camera key ``S4_Seq2_Cam0``) and
  ``TS1_002001.jpg`` (test: camera key ``TS1``). Training subjects S1-S8, test TS1-TS6 (val = test).
* The pickles carry no distortion, and ``part`` differs from the pinhole projection of ``S`` by up
  to ~2 px; ``labels_2d`` chooses as for Human3.6M (default ``projected``: exact 2D/3D agreement).
* ``cameras_train.pkl`` stores ``h = 204`` for every camera (the images are 2048x2048): nothing
  here reads ``w``/``h`` from a pickle; image sizes come from the images.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from posereg.data.cameras import get_camera, load_cameras
from posereg.data.h36m import CROPS, LABELS_2D, load_npz, make_record, select_frames
from posereg.data.records import (
    PoseRecord,
    RecordDataset,
    filter_records,
    for_split,
    record_name,
    require_file,
    require_root,
)
from posereg.errors import ConfigError, DataError
from posereg.skeletons import get_joint_set

NPZ_JOINTS = ("head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
              "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "nose")
NPZ_ROOT = 14
PCK3D_SUBSET = tuple(range(14))  # npz indices of the official 14-joint evaluation
TRAIN_SUBJECTS = tuple(f"S{i}" for i in range(1, 9))
TEST_SUBJECTS = tuple(f"TS{i}" for i in range(1, 7))
_TRAIN_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<seq>Seq\d+)_(?P<cam>Cam\d+)_(?P<frame>\d+)\.\w+$")
_TEST_NAME = re.compile(r"^(?P<subject>TS\d+)_(?P<frame>\d+)\.\w+$")
DEFAULTS = {
    "train": ("annotations/mpi_inf_3dhp_train.npz", "annotations/cameras_train.pkl"),
    "test": ("annotations/mpi_inf_3dhp_test_valid.npz", "annotations/cameras_test.pkl"),
}


def npz_to_h36m17() -> list[int]:
    """For each h36m17 joint, its index in the 3DHP npz order."""
    return [NPZ_JOINTS.index(n) for n in get_joint_set("h36m17").names]


def parse_imgname(name: str, where: str) -> dict[str, Any]:
    """subject, action (sequence, or the test subject), camera key and frame from a 3DHP image name."""
    base = Path(str(name)).name
    m = _TRAIN_NAME.match(base)
    if m is not None:
        key = f"{m['subject']}_{m['seq']}_{m['cam']}"
        return {"subject": m["subject"], "action": m["seq"], "camera": key, "frame": int(m["frame"])}
    m = _TEST_NAME.match(base)
    if m is not None:
        return {"subject": m["subject"], "action": m["subject"], "camera": m["subject"], "frame": int(m["frame"])}
    raise DataError(f"{where}: image name {name!r} is neither 'S<k>_Seq<n>_Cam<c>_<frame>.jpg' nor 'TS<k>_<frame>.jpg'")


def load_records(root: Any, split: str = "train", ann_file: str | None = None, camera_file: str | None = None,
                 image_dir: str = "images", crop: str = "integral_2m", labels_2d: str = "projected",
                 eval_step: int = 1, train_step: int = 1, subjects: Any = None, box_mm: float = 2000.0,
                 skip_bad_records: bool = False, setting: str = "data.root") -> list[PoseRecord]:
    """Parse and check a 3DHP split into PoseRecords with joints in h36m17 order."""
    root_p = require_root(root, setting)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"mpi_inf_3dhp split {split!r}: use train, val or test")
    if crop not in CROPS or labels_2d not in LABELS_2D:
        raise ConfigError(f"mpi_inf_3dhp crop={crop!r} / labels_2d={labels_2d!r}: use crop in {list(CROPS)} "
                          f"and labels_2d in {list(LABELS_2D)}")
    part = "train" if split == "train" else "test"
    ann_file = for_split(ann_file, split, "mpi_inf_3dhp ann_file")
    camera_file = for_split(camera_file, split, "mpi_inf_3dhp camera_file")
    image_dir = for_split(image_dir, split, "mpi_inf_3dhp image_dir")
    ann = require_file(root_p, ann_file or DEFAULTS[part][0], "mpi_inf_3dhp ann_file")
    cams = load_cameras(root_p, camera_file or DEFAULTS[part][1], "mpi_inf_3dhp camera_file")
    wanted = tuple(subjects) if subjects else (TRAIN_SUBJECTS if part == "train" else TEST_SUBJECTS)
    step = train_step if split == "train" else eval_step
    data = load_npz(ann)
    infos = [parse_imgname(str(n), record_name(ann, i)) for i, n in enumerate(data["imgname"])]
    keep = [i for i, inf in enumerate(infos)
            if inf["subject"] in wanted and select_frames(np.array([inf["frame"]]), step)[0]]
    order = npz_to_h36m17()

    def check(_: int, i: int) -> PoseRecord:
        where = record_name(ann, f"{i} ({data['imgname'][i]})")
        cam = get_camera(cams, infos[i]["camera"], where)
        image = root_p / image_dir / str(data["imgname"][i])
        if not image.is_file():
            raise DataError(f"{where}: image {image} does not exist; check data root and image_dir")
        return make_record(i, data, cam, infos[i], image, where, "mpi_inf_3dhp", 0, crop, labels_2d,
                           order=order, box_mm=box_mm)

    if not keep:
        raise DataError(f"mpi_inf_3dhp {split}: no records of subjects {list(wanted)} (step {step}) in {ann}")
    out = filter_records(keep, check, skip_bad_records, f"mpi_inf_3dhp {split} ({ann})")
    for k, r in enumerate(out):
        r.meta["index"] = k
    return out


class MPIINF3DHPDataset(RecordDataset):
    """MPI-INF-3DHP crops with 2D + 3D labels, reordered to h36m17 and mapped into ``joint_set``."""

    name = "mpi_inf_3dhp"
    source_joint_set = "h36m17"
    has_3d = True

    def __init__(self, root: Any = None, split: str = "train", joint_set: str | None = None, input_size: Any = 256,
                 augment: Any = None, seed: int = 0, ann_file: str | None = None, camera_file: str | None = None,
                 image_dir: str = "images", crop: str = "integral_2m", labels_2d: str = "projected",
                 eval_step: int = 1, train_step: int = 1, subjects: Any = None, box_mm: float = 2000.0,
                 skip_bad_records: bool = False, setting: str = "data.root") -> None:
        records = load_records(root, split, ann_file, camera_file, image_dir, crop, labels_2d, eval_step,
                               train_step, subjects, box_mm, skip_bad_records, setting)
        super().__init__(records, joint_set, input_size, augment, seed, split, skip_bad_records=skip_bad_records)
