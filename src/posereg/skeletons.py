"""Joint sets (names, tree, flip pairs, evaluation parts) and mappings between them.

Joint names are shared across sets where the joints are the same anatomical point, so mappings
that have no published table are derived by name. Names used:

* ``neck`` is MPII ``upper_neck`` = H36M-17 joint 8 (Sun's "neck", mmpose's "thorax") = LSP ``neck``.
* ``thorax`` is MPII ``thorax`` = the appended H36M-18 joint 17 (mean of the shoulders).
* ``nose`` is H36M-17 joint 9 (mmpose "neck_base") = COCO ``nose`` (per Sun's COCO -> H36M table).
* ``spine`` is H36M-17 joint 7 (Sun's "torso").

Caveat: Luvizon's ``pa17j`` (SSP-Net) is *not* the standard H36M-17. It is built from raw H36M joints
``[0,12,13,15,25,17,26,18,27,19,1,6,2,7,3,8,11]``: it drops raw 14 (H36M-17 "nose") and adds raw 11
(a lower spine joint). Its ``thorax`` is raw 12 (= H36M-17 ``spine``) and its ``spine`` is raw 11,
so the pa17j <-> H36M tables below follow the raw indices, not the names.

The root's parent is -1. ``bones`` are (parent, child) index pairs used for drawing and bone-length
statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from posereg.errors import ConfigError

PART_NAMES = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")


@dataclass(frozen=True)
class JointSet:
    """A named joint set: order, kinematic tree, flip pairs and evaluation metadata."""

    name: str
    names: tuple[str, ...]
    parents: tuple[int, ...]
    root: int
    parts: dict[str, tuple[int, ...]]
    pckh_excluded: tuple[int, ...] = ()
    oks_sigmas: tuple[float, ...] | None = None
    extra_bones: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = field(init=False)
    flip_index: tuple[int, ...] = field(init=False)
    bones: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.parents) != n or self.parents[self.root] != -1:
            raise ValueError(f"joint set {self.name}: parents must have {n} entries and -1 at the root")
        pairs = []
        for i, nm in enumerate(self.names):
            if nm.startswith("l_"):
                j = self.names.index("r_" + nm[2:])
                pairs.append((min(i, j), max(i, j)))
        flip = list(range(n))
        for a, b in pairs:
            flip[a], flip[b] = b, a
        bones = tuple((p, c) for c, p in enumerate(self.parents) if p >= 0) + self.extra_bones
        object.__setattr__(self, "flip_pairs", tuple(sorted(pairs)))
        object.__setattr__(self, "flip_index", tuple(flip))
        object.__setattr__(self, "bones", bones)

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.names)

    def index(self, joint_name: str) -> int:
        """Index of a joint by name."""
        return self.names.index(joint_name)

    def side(self, j: int) -> str:
        """'l', 'r' or 'c' (centre) for joint j, for drawing."""
        nm = self.names[j]
        return nm[0] if nm[:2] in ("l_", "r_") else "c"


def _parts(names: tuple[str, ...], head: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Per-part column indices: head joints given, the limb parts found by name."""
    out: dict[str, tuple[int, ...]] = {"head": tuple(names.index(h) for h in head)}
    for part in PART_NAMES[1:]:
        idx = tuple(i for i, nm in enumerate(names) if nm in (f"l_{part}", f"r_{part}"))
        if idx:
            out[part] = tuple(sorted(idx))
    return out


def _make(name: str, names: list[str], parents: list[int], head: tuple[str, ...], **kw: Any) -> JointSet:
    t = tuple(names)
    return JointSet(name=name, names=t, parents=tuple(parents), root=parents.index(-1),
                    parts=_parts(t, head), **kw)


_MPII = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "neck", "head_top",
         "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"]
_H36M = ["pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "neck", "nose",
         "head_top", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"]
_COCO = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
         "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"]
_LSP = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
        "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top"]
_PA17J = ["pelvis", "thorax", "neck", "head_top", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist",
          "l_wrist", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle", "spine"]
COCO_OKS_SIGMAS = (.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087,
                   .089, .089)
# The usual COCO drawing skeleton, 0-based; tree edges come from the parents.
_COCO_EXTRA_BONES = ((5, 6), (11, 12), (1, 2), (3, 5), (4, 6))

JOINT_SETS: dict[str, JointSet] = {
    "mpii16": _make("mpii16", _MPII, [1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 7, 7, 13, 14], ("head_top",),
                    pckh_excluded=(6, 7)),
    "h36m17": _make("h36m17", _H36M, [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15], ("head_top",)),
    # Sun et al.: H36M-17 + thorax (mean of the shoulders) as joint 17, with their parent table.
    "h36m18": _make("h36m18", _H36M + ["thorax"],
                    [-1, 0, 1, 2, 0, 4, 5, 0, 17, 17, 8, 17, 11, 12, 17, 14, 15, 0], ("head_top",)),
    "coco17": _make("coco17", _COCO, [-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14],
                    ("nose", "l_eye", "r_eye", "l_ear", "r_ear"), oks_sigmas=COCO_OKS_SIGMAS,
                    extra_bones=_COCO_EXTRA_BONES),
    "lsp14": _make("lsp14", _LSP, [1, 2, 12, 12, 3, 4, 7, 8, 12, 12, 9, 10, -1, 12], ("head_top",)),
    "pa17j": _make("pa17j", _PA17J, [-1, 16, 1, 2, 1, 1, 4, 5, 6, 7, 0, 0, 10, 11, 12, 13, 0], ("head_top",)),
}

# Published tables: for each dst joint, the src index (-1 = no counterpart). methods.md section 5.
_H36M17_TO_PA17J = [0, 7, 8, 10, 14, 11, 15, 12, 16, 13, 1, 4, 2, 5, 3, 6, -1]  # via raw-32 indices
_TABLES: dict[tuple[str, str], list[int]] = {
    ("mpii16", "h36m18"): [6, 2, 1, 0, 3, 4, 5, -1, 8, -1, 9, 13, 14, 15, 12, 11, 10, 7],
    ("coco17", "h36m18"): [-1, 12, 14, 16, 11, 13, 15, -1, -1, 0, -1, 5, 7, 9, 6, 8, 10, -1],
    ("h36m17", "pa17j"): _H36M17_TO_PA17J,
    ("h36m18", "pa17j"): _H36M17_TO_PA17J,
    ("pa17j", "mpii16"): [14, 12, 10, 11, 13, 15, 0, 1, 2, 3, 8, 6, 4, 5, 7, 9],
    ("mpii16", "lsp14"): [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9],
}


def get_joint_set(js: str | JointSet) -> JointSet:
    """The registered joint set of that name (a JointSet passes through)."""
    if isinstance(js, JointSet):
        return js
    try:
        return JOINT_SETS[js]
    except KeyError:
        raise ConfigError(f"unknown joint set {js!r}; choose one of {sorted(JOINT_SETS)}") from None


def _by_name(src: JointSet, dst: JointSet) -> list[int]:
    return [src.names.index(n) if n in src.names else -1 for n in dst.names]


def _invert(table: list[int], n_dst: int) -> list[int]:
    out = [-1] * n_dst
    for dst_i, src_i in enumerate(table):
        if src_i >= 0:
            out[src_i] = dst_i
    return out


@cache
def _mapping(src: str, dst: str) -> tuple[int, ...]:
    s, d = get_joint_set(src), get_joint_set(dst)
    if src == dst:
        return tuple(range(s.num_joints))
    if (src, dst) in _TABLES:
        return tuple(_TABLES[src, dst])
    if (dst, src) in _TABLES:
        return tuple(_invert(_TABLES[dst, src], d.num_joints))
    return tuple(_by_name(s, d))


def mapping_indices(src: str | JointSet, dst: str | JointSet) -> list[int]:
    """For each joint of dst, the index of the same joint in src, or -1 when src has no counterpart."""
    return list(_mapping(get_joint_set(src).name, get_joint_set(dst).name))


def check_mappable(src: str | JointSet, dst: str | JointSet, setting: str = "data.joint_set") -> None:
    """Raise ConfigError when src shares no joint with dst (nothing could be supervised)."""
    idx = mapping_indices(src, dst)
    if all(i < 0 for i in idx):
        raise ConfigError(f"{setting}: joint set {get_joint_set(src).name!r} cannot be mapped into "
                          f"{get_joint_set(dst).name!r} (no joint in common); pick a compatible joint set")


def map_joints(array: Any, src: str | JointSet, dst: str | JointSet) -> tuple[Any, Any]:
    """(..., J_src, C) -> ((..., J_dst, C) with zeros where unmapped, present mask (J_dst,))."""
    idx = mapping_indices(src, dst)
    n_src = get_joint_set(src).num_joints
    if array.shape[-2] != n_src:
        raise ValueError(f"map_joints: expected {n_src} joints on axis -2, got shape {tuple(array.shape)}")
    safe = [max(i, 0) for i in idx]
    present_list = [i >= 0 for i in idx]
    if _is_torch(array):
        import torch

        present = torch.tensor(present_list, dtype=torch.bool, device=array.device)
        out = array[..., safe, :] * present[:, None].to(array.dtype)
        return out, present
    present = np.asarray(present_list, dtype=bool)
    out = np.asarray(array)[..., safe, :] * present[:, None].astype(np.asarray(array).dtype)
    return out, present


def add_thorax(h36m17: Any) -> Any:
    """H36M-17 (..., 17, C) -> H36M-18 by appending the thorax as the mean of the shoulders (Sun et al.)."""
    thorax = (h36m17[..., 11:12, :] + h36m17[..., 14:15, :]) / 2
    if _is_torch(h36m17):
        import torch

        return torch.cat([h36m17, thorax], dim=-2)
    return np.concatenate([h36m17, thorax], axis=-2)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")
