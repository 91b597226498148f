"""MPII Human Pose: the community json annotations plus the official head boxes for PCKh.

Convention: MPII coordinates are 1-based pixel indices, so the pixel numbered k (1-based) has its
centre at k - 0.5 in posereg's continuous convention (DESIGN section 3). Joints and box centres
are converted once here (``x - 0.5``) and nothing is added at evaluation; :func:`to_mpii_convention`
is the inverse, for writing predictions in the official format.

Crop box as the Integral / HRNet code: centre_y += 15 * scale, side = scale * 200 * 1.25.

PCKh needs the head sizes: for val/test ``headboxes`` names ``mpii_gt_val.mat`` (``headboxes_src``,
same record order as the val json), head size = 0.6 x the head-box diagonal. Without it PCKh is
refused unless ``head_size_proxy=true``: then (head boxes or not) the head size is 0.6 x the
diagonal of the square whose side is the upper-neck -> head-top segment, and the metric is named
``pckh_proxy`` (not comparable with published numbers). Training needs no head sizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from posereg.data.records import (
    PoseRecord,
    RecordDataset,
    check_finite,
    check_joints,
    filter_records,
    for_split,
    record_name,
    require_file,
    require_root,
)
from posereg.errors import ConfigError, DataError

NUM_JOINTS = 16
NECK, HEAD_TOP = 8, 9
SC_BIAS = 0.6  # official util_get_head_size.m
DEFAULT_ANN = {"train": "annotations/mpii_train.json", "val": "annotations/mpii_val.json",
               "test": "annotations/mpii_val.json"}


def from_mpii_convention(xy: Any) -> np.ndarray:
    """1-based MPII pixel coordinates -> continuous coordinates (pixel k has its centre at k - 0.5)."""
    return np.asarray(xy, dtype=np.float64) - 0.5


def to_mpii_convention(xy: Any) -> np.ndarray:
    """Continuous coordinates -> 1-based MPII pixel coordinates (inverse of from_mpii_convention)."""
    return np.asarray(xy, dtype=np.float64) + 0.5


def load_json_list(path: Path) -> list[dict[str, Any]]:
    """A json file holding a list of records, or a DataError naming the file."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the annotation json ({e})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
    return data


def load_head_sizes(path: Path, n_records: int, joints: np.ndarray | None = None) -> np.ndarray:
    """(N,) PCKh head sizes 0.6 x ||headbox[1] - headbox[0]|| from mpii_gt_val.mat, checked against the json."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the head-box .mat ({e})") from None
    if "headboxes_src" not in mat:
        raise DataError(f"{path}: no 'headboxes_src' variable; expected the official mpii_gt_val.mat")
    hb = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if hb.ndim != 3 or hb.shape[:2] != (2, 2) or hb.shape[2] != n_records:
        raise DataError(f"{path}: headboxes_src has shape {hb.shape}, expected (2, 2, {n_records}) to match the "
                        "val json; use the mpii_gt_val.mat that belongs to this mpii_val.json")
    if joints is not None and "pos_gt_src" in mat:
        # Same record order as the json? The .mat stores the same 1-based joints.
        pos = np.transpose(np.asarray(mat["pos_gt_src"], dtype=np.float64), (2, 0, 1))
        ok = np.isfinite(pos).all(-1) & (joints > 0).all(-1)
        if ok.any() and np.median(np.abs(pos[ok] - joints[ok])) > 1.0:
            raise DataError(f"{path}: pos_gt_src does not match the val json joints; the record orders differ")
    return SC_BIAS * np.linalg.norm(hb[1] - hb[0], axis=0)


def proxy_head_size(joints_cont: np.ndarray, visible: np.ndarray) -> float:
    """Head-segment proxy: 0.6 x diagonal of the square on the upper-neck -> head-top segment (0 if unlabelled)."""
    if not (visible[NECK] and visible[HEAD_TOP]):
        return 0.0
    return float(SC_BIAS * np.sqrt(2.0) * np.linalg.norm(joints_cont[HEAD_TOP] - joints_cont[NECK]))


def parse_record(i: int, rec: dict[str, Any], ann_file: Path, image_dir: Path, head_size: float | None,
                 box_padding: float = 1.25, center_shift: float = 15.0) -> PoseRecord:
    """One json record -> PoseRecord in continuous image pixels (DataError naming file and record)."""
    where = record_name(ann_file, f"{i} ({rec.get('image', '?')})")
    for key in ("image", "center", "scale", "joints"):
        if key not in rec:
            raise DataError(f"{where}: missing field {key!r}")
    joints = check_joints(rec["joints"], NUM_JOINTS, 2, where)[:, :2]
    vis = np.asarray(rec.get("joints_vis", np.ones(NUM_JOINTS)), dtype=np.float64).reshape(-1)
    if vis.shape[0] != NUM_JOINTS:
        raise DataError(f"{where}: joints_vis has {vis.shape[0]} entries, expected {NUM_JOINTS}")
    labelled = (vis > 0) & (joints >= 0).all(-1)
    center = from_mpii_convention(check_finite(rec["center"], where, "center").reshape(2))
    scale = float(check_finite(rec["scale"], where, "scale"))
    if scale <= 0:
        raise DataError(f"{where}: scale {scale} must be positive")
    center[1] += center_shift * scale
    side = scale * 200.0 * box_padding
    joints_cont = from_mpii_convention(joints) * labelled[:, None]
    hs = proxy_head_size(joints_cont, labelled) if head_size is None else float(head_size)
    lo = joints_cont[labelled].min(0) if labelled.any() else center
    hi = joints_cont[labelled].max(0) if labelled.any() else center
    image = image_dir / str(rec["image"])
    if not image.is_file():
        raise DataError(f"{where}: image {image} does not exist; check data root and image_dir")
    return PoseRecord(image=image, joints_2d=joints_cont, visible=labelled.astype(np.float64), center=center,
                      box_size=np.array([side, side]), head_size=hs,
                      bbox=np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]),
                      area=float((hi - lo).prod()),
                      meta={"dataset": "mpii", "index": i, "image": str(rec["image"])})


def load_records(root: Any, split: str = "train", ann_file: str | None = None, image_dir: str = "images",
                 headboxes: str | None = None, head_size_proxy: bool = False, skip_bad_records: bool = False,
                 box_padding: float = 1.25, setting: str = "data.root") -> list[PoseRecord]:
    """Parse and check an MPII split; val/test refuse to run without head boxes unless head_size_proxy."""
    root_p = require_root(root, setting)
    if split not in DEFAULT_ANN:
        raise ConfigError(f"mpii split {split!r}: use train, val or test")
    ann_file = for_split(ann_file, split, "mpii ann_file")
    image_dir = for_split(image_dir, split, "mpii image_dir")
    ann = require_file(root_p, ann_file or DEFAULT_ANN[split], "mpii ann_file")
    raw = load_json_list(ann)
    head_sizes: np.ndarray | None = None
    if split != "train" and not head_size_proxy:
        hb_path = Path(headboxes) if headboxes and Path(headboxes).is_absolute() else root_p / (headboxes or "")
        if not headboxes or not hb_path.is_file():
            raise ConfigError(f"MPII PCKh needs head boxes: headboxes={headboxes!r} is not a file under {root_p}; "
                              "point data.headboxes at the official mpii_gt_val.mat (headboxes_src), or set "
                              "data.head_size_proxy=true to use the head-segment proxy (reported as pckh_proxy, "
                              "not comparable with published numbers)")
        joints = np.array([np.asarray(r.get("joints", np.zeros((NUM_JOINTS, 2))), dtype=np.float64)
                           for r in raw]) if raw else None
        if joints is not None and joints.shape[1:] != (NUM_JOINTS, 2):
            joints = None
        head_sizes = load_head_sizes(hb_path, len(raw), joints)
    image_root = root_p / image_dir

    def check(i: int, rec: dict[str, Any]) -> PoseRecord:
        if not isinstance(rec, dict):
            raise DataError(f"{record_name(ann, i)}: expected an object, got {type(rec).__name__}")
        hs = None if head_sizes is None else float(head_sizes[i])
        return parse_record(i, rec, ann, image_root, hs, box_padding=box_padding)

    return filter_records(raw, check, skip_bad_records, f"mpii {split} ({ann})")


class MPIIDataset(RecordDataset):
    """MPII person crops (json annotations), joints mapped from ``mpii16`` into ``joint_set``."""

    name = "mpii"
    source_joint_set = "mpii16"

    def __init__(self, root: Any = None, split: str = "train", joint_set: str | None = None, input_size: Any = 256,
                 augment: Any = None, seed: int = 0, ann_file: str | None = None, image_dir: str = "images",
                 headboxes: str | None = None, head_size_proxy: bool = False, box_padding: float = 1.25,
                 skip_bad_records: bool = False, setting: str = "data.root") -> None:
        records = load_records(root, split, ann_file, image_dir, headboxes, head_size_proxy, skip_bad_records,
                               box_padding, setting)
        super().__init__(records, joint_set, input_size, augment, seed, split, skip_bad_records=skip_bad_records)
        self.head_size_proxy = bool(head_size_proxy)
