"""Leeds Sports Pose (LSP) and LSP-extended: the original ``joints.mat`` files, read with scipy.

* LSP: ``joints`` is 3 x 14 x 2000 (x, y, occluded flag: 1 = occluded). Every joint is labelled
  (occluded ones are estimated), so all 14 count. Images ``images/im0001.jpg``...; the first 1000
  are the training set, the last 1000 the test set.
* LSP-extended (``extended=true``): ``joints`` is 14 x 3 x 10000 (x, y, visible flag: 1 = visible);
  joints with flag 0 are treated as unlabelled. Images ``images/im00001.jpg``...; training only.
  Both layouts are recognized from the array shape.
* Coordinates are MATLAB 1-based pixel indices: continuous = x - 0.5, as MPII.
* Joint order: posereg ``lsp14``. Evaluation: PCK@0.2 normalized by the torso (``PCK``) and PCP.
* Observer- vs person-centric: the current ``lsp_dataset.zip`` labels left/right from the person's
  viewpoint (person-centric, PC); the 2010 release (``lsp_dataset_original``) labels them from the
  observer's viewpoint (OC). Point ``joints_file`` at the file you want and set ``centric`` to match:
  it is reported in ``meta['centric']`` and in the metric names (``pck_pc@0.2`` / ``pck_oc@0.2``).
* Crop: ``box=image`` (default; the images are already person-centred, ~150 px tall persons) uses
  the whole image; ``box=joints`` the labelled joints' box padded by ``box_padding``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posereg.data.decode import image_size
from posereg.data.records import (
    PoseRecord,
    RecordDataset,
    check_joints,
    filter_records,
    record_name,
    require_file,
    require_root,
)
from posereg.errors import ConfigError, DataError

NUM_JOINTS = 14
SPLITS = {"train": slice(0, 1000), "val": slice(1000, 2000), "test": slice(1000, 2000)}
CENTRIC = ("person", "observer")  # metric names follow it: posereg.metrics.lsp


def read_joints_mat(path: Path) -> tuple[np.ndarray, bool]:
    """(N, 14, 3) joints with the third column = 'labelled' in both layouts, and whether it was LSP-extended."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read joints.mat ({e})") from None
    if "joints" not in mat:
        raise DataError(f"{path}: no 'joints' variable; expected the LSP / LSP-extended joints.mat")
    j = np.asarray(mat["joints"], dtype=np.float64)
    if j.ndim == 3 and j.shape[:2] == (3, NUM_JOINTS):  # LSP: x, y, occluded
        out = np.transpose(j, (2, 1, 0)).copy()
        out[..., 2] = 1.0  # every LSP joint is annotated, occluded ones included
        return out, False
    if j.ndim == 3 and j.shape[:2] == (NUM_JOINTS, 3):  # LSP-extended: x, y, visible
        return np.transpose(j, (2, 0, 1)).copy(), True
    raise DataError(f"{path}: joints has shape {j.shape}; expected 3x14xN (LSP) or 14x3xN (LSP-extended)")


def load_records(root: Any, split: str = "train", joints_file: str = "joints.mat", image_dir: str = "images",
                 extended: bool | None = None, box: str = "image", box_padding: float = 1.25,
                 centric: str = "person", skip_bad_records: bool = False,
                 setting: str = "data.root") -> list[PoseRecord]:
    """Parse and check an LSP / LSP-extended split."""
    root_p = require_root(root, setting)
    if split not in SPLITS:
        raise ConfigError(f"lsp split {split!r}: use train, val or test")
    if box not in ("image", "joints"):
        raise ConfigError(f"lsp box={box!r}: use 'image' or 'joints'")
    if centric not in CENTRIC:
        raise ConfigError(f"lsp centric={centric!r}: use one of {list(CENTRIC)}")
    path = require_file(root_p, joints_file, "lsp joints_file")
    joints, is_ext = read_joints_mat(path)
    if extended is not None and bool(extended) != is_ext:
        raise DataError(f"{path}: the file is {'LSP-extended' if is_ext else 'LSP'} but extended={extended}")
    if is_ext and split != "train":
        raise ConfigError("LSP-extended has no test split: use it as a training source only")
    idx = list(range(len(joints))) if is_ext else list(range(len(joints)))[SPLITS[split]]
    digits = 5 if is_ext else 4

    def check(_: int, i: int) -> PoseRecord:
        name = f"im{i + 1:0{digits}d}.jpg"
        where = record_name(path, f"{i} ({name})")
        j = check_joints(joints[i], NUM_JOINTS, 2, where)
        vis = (j[:, 2] > 0).astype(np.float64)
        if vis.sum() == 0:
            raise DataError(f"{where}: no labelled joint")
        xy = (j[:, :2] - 0.5) * vis[:, None]
        image = root_p / image_dir / name
        lo, hi = xy[vis > 0].min(0), xy[vis > 0].max(0)
        if box == "image":
            w, h = image_size(image, where)
            center, side = np.array([w / 2, h / 2]), float(max(w, h))
        else:
            if not image.is_file():
                raise DataError(f"{where}: image {image} does not exist; check data root and image_dir")
            center, side = (lo + hi) / 2, float((hi - lo).max() * box_padding)
        return PoseRecord(image=image, joints_2d=xy, visible=vis, center=center, box_size=np.array([side, side]),
                          bbox=np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]),
                          area=float((hi - lo).prod()),
                          meta={"dataset": "lspet" if is_ext else "lsp", "index": i, "image": name,
                                "centric": centric})

    out = filter_records(idx, check, skip_bad_records, f"lsp {split} ({path})")
    for k, r in enumerate(out):
        r.meta["index"] = k
    return out


class LSPDataset(RecordDataset):
    """LSP / LSP-extended crops, joints mapped from ``lsp14`` into ``joint_set``."""

    name = "lsp"
    source_joint_set = "lsp14"

    def __init__(self, root: Any = None, split: str = "train", joint_set: str | None = None, input_size: Any = 256,
                 augment: Any = None, seed: int = 0, joints_file: str = "joints.mat", image_dir: str = "images",
                 extended: bool | None = None, box: str = "image", box_padding: float = 1.25,
                 centric: str = "person", skip_bad_records: bool = False, setting: str = "data.root") -> None:
        records = load_records(root, split, joints_file, image_dir, extended, box, box_padding, centric,
                               skip_bad_records, setting)
        super().__init__(records, joint_set, input_size, augment, seed, split, skip_bad_records=skip_bad_records)
        self.centric = centric
