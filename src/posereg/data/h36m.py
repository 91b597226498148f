"""Human3.6M: the community npz format (imgname, center, scale, part, S) plus cameras.pkl.

* ``S`` (J,4) is in the camera frame in metres (+ a validity flag) and becomes ``joints_3d`` in mm.
* ``part`` (J,3) are the 2D labels in image pixels, the 3D joints projected *with* the camera's
  distortion (radial k1..k3, tangential p1, p2): the crop camera of a sample is a pinhole, so
  ``labels_2d`` chooses how 2D and 3D agree:

  - ``projected`` (default, as the Integral code): ``joints_2d`` = pinhole projection of ``S``, so
    ``project(joints_3d, camera)`` reproduces ``joints_2d`` exactly (labels differ from the image
    content by the lens distortion, 1-2.5 px in 1000 px images);
  - ``part``: ``joints_2d`` = ``part`` (faithful to the pixels); the distortion model
    (:meth:`posereg.data.cameras.Camera.project`) followed by the crop affine reproduces them
    within 0.2 px, the pinhole crop camera alone within ~2.5 px.

  Either way ``part`` and ``c`` share one pixel convention, taken as posereg's continuous one.
* Subject, action, sub-action, camera and frame are parsed from the image name
  (``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``).
* Protocols: ``p1`` trains on S1, S5, S6, S7, S8, S9 and tests on S11 (PA-MPJPE); ``p2`` trains on
  S1, S5, S6, S7, S8 and tests on S9, S11 (MPJPE). val = test subjects. Evaluation keeps the frames
  with ``(frame - 1) % eval_step == 0`` (every 64th frame of each video, from the first), so the npz
  must hold all frames of the test videos (mmpose's ``fps50`` files).
* Crops: ``integral_2m`` (a 2000 mm square around the pelvis at pelvis depth, projected: side
  ``2000 * sqrt(fx * fy) / Z_pelvis`` px, centred on the projected pelvis, as the Integral code) or
  ``center_scale`` (the npz box, side ``scale * 200``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from posereg.data.cameras import Camera, get_camera, load_cameras
from posereg.data.records import (
    PoseRecord,
    RecordDataset,
    check_finite,
    check_joints,
    filter_records,
    record_name,
    require_file,
    require_root,
)
from posereg.errors import ConfigError, DataError
from posereg.geometry import apply_affine, crop_points_transform, invert_affine

NUM_JOINTS = 17
ROOT = 0
PROTOCOLS = {
    "p1": {"train": ("S1", "S5", "S6", "S7", "S8", "S9"), "test": ("S11",)},
    "p2": {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")},
}
CROPS = ("integral_2m", "center_scale")
LABELS_2D = ("projected", "part")
NPZ_KEYS = ("imgname", "center", "scale", "part", "S")
_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<action>.+)\.(?P<camera>\d+)_(?P<frame>\d+)\.\w+$")


def parse_imgname(name: str, where: str) -> dict[str, Any]:
    """subject, action (sub-action suffix dropped), subaction, camera and frame from an H36M image name."""
    m = _NAME.match(Path(str(name)).name)
    if m is None:
        raise DataError(f"{where}: image name {name!r} is not '<S>_<Action>.<camera>_<frame>.jpg'")
    full = m["action"]
    action = re.sub(r"[ _]\d+$", "", full)
    return {"subject": m["subject"], "action": action, "subaction": full, "camera": m["camera"],
            "frame": int(m["frame"])}


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The npz arrays (imgname, center, scale, part, S), checked for presence and matching lengths."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the npz ({e})") from None
    missing = [k for k in NPZ_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; expected {list(NPZ_KEYS)}")
    n = len(data["imgname"])
    bad = [k for k in NPZ_KEYS if len(data[k]) != n]
    if bad:
        raise DataError(f"{path}: arrays {bad} do not have {n} records like imgname")
    return data


def crop_box_2m(root_mm: np.ndarray, camera: Camera, box_mm: float = 2000.0) -> tuple[np.ndarray, float]:
    """(centre, side) in pixels of a box_mm square at the root's depth, centred on the projected root (pinhole)."""
    fx, fy = camera.intrinsics[:2]
    center = camera.project(root_mm[None], distort=False)[0]
    return center, float(box_mm * np.sqrt(fx * fy) / root_mm[2])


def make_record(i: int, data: dict[str, np.ndarray], camera: Camera, info: dict[str, Any], image: Path,
                where: str, dataset: str, root_index: int, crop: str, labels_2d: str,
                order: list[int] | None = None, box_mm: float = 2000.0) -> PoseRecord:
    """One npz record -> PoseRecord (joints reordered by ``order`` when given)."""
    n_src = NUM_JOINTS
    part = check_joints(data["part"][i], n_src, 2, where, "part")
    s = check_joints(data["S"][i], n_src, 3, where, "S")
    if order is not None:
        part, s = part[order], s[order]
    vis2 = part[:, 2] > 0 if part.shape[1] > 2 else np.ones(n_src, dtype=bool)
    vis3 = s[:, 3] > 0 if s.shape[1] > 3 else np.ones(n_src, dtype=bool)
    j3 = s[:, :3] * 1000.0
    if j3[root_index, 2] <= 0 or not vis3[root_index]:
        raise DataError(f"{where}: the root joint has no valid depth (Z = {j3[root_index, 2]:.1f} mm)")
    if labels_2d == "projected":
        j2 = camera.project(j3, distort=False)
        vis2 = vis2 & vis3
    else:
        j2 = part[:, :2]
    if crop == "integral_2m":
        center, side = crop_box_2m(j3[root_index], camera, box_mm)
    else:
        center = check_finite(data["center"][i], where, "center").reshape(2)
        side = float(check_finite(data["scale"][i], where, "scale")) * 200.0
    if side <= 0:
        raise DataError(f"{where}: crop box side {side} must be positive")
    lo, hi = j2[vis2].min(0), j2[vis2].max(0)
    meta = {"dataset": dataset, "index": i, "image": str(data["imgname"][i]), **info}
    return PoseRecord(image=image, joints_2d=j2 * vis2[:, None], visible=vis2.astype(np.float64), center=center,
                      box_size=np.array([side, side]), meta=meta, joints_3d=j3 * vis3[:, None],
                      visible_3d=vis3.astype(np.float64), camera=camera.intrinsics.copy(),
                      bbox=np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]),
                      area=float((hi - lo).prod()))


def select_frames(frames: np.ndarray, step: int) -> np.ndarray:
    """Mask of the frames kept with one every ``step`` frames of each video, from the first: (frame-1) % step == 0."""
    if step < 1:
        raise ConfigError(f"frame step {step} must be >= 1")
    return (np.asarray(frames) - 1) % step == 0


def _check_choice(value: str, choices: tuple[str, ...], setting: str) -> None:
    if value not in choices:
        raise ConfigError(f"{setting}={value!r}: use one of {list(choices)}")


def load_records(root: Any, split: str = "train", protocol: str = "p2", ann_files: Any = None,
                 camera_file: str = "annotation_body3d/cameras.pkl", image_dir: str = "images",
                 crop: str = "integral_2m", labels_2d: str = "projected", eval_step: int = 64,
                 train_step: int = 1, subjects: Any = None, box_mm: float = 2000.0,
                 skip_bad_records: bool = False, setting: str = "data.root") -> list[PoseRecord]:
    """Parse, check and split the Human3.6M npz files of a protocol (subjects overrides the split's subjects)."""
    root_p = require_root(root, setting)
    _check_choice(protocol, tuple(PROTOCOLS), "h36m protocol")
    _check_choice(crop, CROPS, "h36m crop")
    _check_choice(labels_2d, LABELS_2D, "h36m labels_2d")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"h36m split {split!r}: use train, val or test")
    files = ann_files or ["annotation_body3d/fps50/h36m_train.npz", "annotation_body3d/fps50/h36m_test.npz"]
    files = [files] if isinstance(files, str) else list(files)
    wanted = tuple(subjects) if subjects else PROTOCOLS[protocol]["train" if split == "train" else "test"]
    step = train_step if split == "train" else eval_step
    cams = load_cameras(root_p, camera_file, "h36m camera_file")
    out: list[PoseRecord] = []
    for rel in files:
        path = require_file(root_p, rel, "h36m ann_files")
        data = load_npz(path)
        infos = [parse_imgname(str(n), record_name(path, i)) for i, n in enumerate(data["imgname"])]
        keep = [i for i, inf in enumerate(infos) if inf["subject"] in wanted]
        keep = [i for i in keep if select_frames(np.array([infos[i]["frame"]]), step)[0]]

        def check(_: int, i: int, path: Path = path, data: dict = data, infos: list = infos) -> PoseRecord:
            where = record_name(path, f"{i} ({data['imgname'][i]})")
            info = infos[i]
            cam = get_camera(cams, (info["subject"], info["camera"]), where)
            image = root_p / image_dir / str(data["imgname"][i])
            if not image.is_file():
                raise DataError(f"{where}: image {image} does not exist; check data root and image_dir")
            return make_record(i, data, cam, info, image, where, "h36m", ROOT, crop, labels_2d, box_mm=box_mm)

        if keep:
            out.extend(filter_records(keep, check, skip_bad_records, f"h36m {split} ({path})"))
    if not out:
        raise DataError(f"h36m {split}: no records of subjects {list(wanted)} (step {step}) in {files}")
    for k, r in enumerate(out):
        r.meta["index"] = k
    return out


class H36MDataset(RecordDataset):
    """Human3.6M crops with 2D + 3D labels (h36m17), mapped into ``joint_set`` (e.g. h36m18)."""

    name = "h36m"
    source_joint_set = "h36m17"
    has_3d = True

    def __init__(self, root: Any = None, split: str = "train", joint_set: str | None = None, input_size: Any = 256,
                 augment: Any = None, seed: int = 0, protocol: str = "p2", ann_files: Any = None,
                 camera_file: str = "annotation_body3d/cameras.pkl", image_dir: str = "images",
                 crop: str = "integral_2m", labels_2d: str = "projected", eval_step: int = 64, train_step: int = 1,
                 subjects: Any = None, box_mm: float = 2000.0, skip_bad_records: bool = False,
                 setting: str = "data.root") -> None:
        records = load_records(root, split, protocol, ann_files, camera_file, image_dir, crop, labels_2d,
                               eval_step, train_step, subjects, box_mm, skip_bad_records, setting)
        super().__init__(records, joint_set, input_size, augment, seed, split, skip_bad_records=skip_bad_records)


def distorted_crop_projection(joints_3d: np.ndarray, camera: Camera, crop_to_image: np.ndarray) -> np.ndarray:
    """Crop pixels of a sample's joints_3d through the original camera *with* distortion (for labels_2d=part).

    The sample's 3D joints live in the crop's camera frame (rotated about the optical axis / mirrored
    with the crop); they are taken back to the image's camera frame, projected with the distortion
    model, and mapped into the crop.
    """
    A = invert_affine(np.asarray(crop_to_image, dtype=np.float64))
    M = crop_points_transform(A)
    image_frame = np.asarray(joints_3d, dtype=np.float64) @ M  # M is orthogonal: inverse = transpose
    return apply_affine(A, camera.project(image_frame, distort=True))
