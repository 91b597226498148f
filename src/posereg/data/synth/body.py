"""SynthPose body: H36M topology bone template, subjects (proportions + appearance), forward kinematics.

Body frame: x = the subject's left, y = up, z = forward (the way the subject faces), millimetres,
pelvis at the origin. Joints follow ``h36m18`` (H36M-17 in Sun's order + thorax = mean of shoulders).
Forward kinematics is written as two tables: the joint rotations (``_ROTATIONS``, multiplied along
the chains root -> hips -> knees, root -> spine -> chest -> head / shoulders -> elbows) and the body
as vectors in those frames (``_VECTORS``), so one pose costs a handful of batched array operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from posereg.data.synth.poses import IDX, angles_vector

# Joint indices (h36m18).
PELVIS, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, SPINE, NECK, NOSE, HEAD = range(11)
L_SHO, L_ELB, L_WRI, R_SHO, R_ELB, R_WRI, THORAX = range(11, 18)
NUM_JOINTS = 18

# Mean bone lengths in mm (close to the Human3.6M subjects' averages).
BONE_TEMPLATE: dict[str, float] = {
    "hip": 133.0, "thigh": 450.0, "shin": 445.0, "lower_spine": 233.0, "upper_spine": 257.0,
    "neck_nose": 121.0, "nose_head": 115.0, "shoulder": 151.0, "upper_arm": 278.0, "forearm": 252.0,
}
# (parent, child, bone name): the bones whose length the subject sets.
BONES: tuple[tuple[int, int, str], ...] = (
    (PELVIS, R_HIP, "hip"), (R_HIP, R_KNEE, "thigh"), (R_KNEE, R_ANKLE, "shin"),
    (PELVIS, L_HIP, "hip"), (L_HIP, L_KNEE, "thigh"), (L_KNEE, L_ANKLE, "shin"),
    (PELVIS, SPINE, "lower_spine"), (SPINE, NECK, "upper_spine"), (NECK, NOSE, "neck_nose"),
    (NOSE, HEAD, "nose_head"), (NECK, L_SHO, "shoulder"), (L_SHO, L_ELB, "upper_arm"),
    (L_ELB, L_WRI, "forearm"), (NECK, R_SHO, "shoulder"), (R_SHO, R_ELB, "upper_arm"), (R_ELB, R_WRI, "forearm"),
)


@dataclass(frozen=True)
class BodyConfig:
    """Ranges of per-subject proportions: overall scale times an independent per-bone factor."""

    height_scale: tuple[float, float] = (0.88, 1.12)
    bone_jitter: float = 0.06
    build: tuple[float, float] = (0.85, 1.25)

    def bone_range(self, bone: str) -> tuple[float, float]:
        """The (min, max) length in mm that bone may take."""
        t = BONE_TEMPLATE[bone]
        return t * self.height_scale[0] * (1 - self.bone_jitter), t * self.height_scale[1] * (1 + self.bone_jitter)


@dataclass(frozen=True)
class Appearance:
    """Colours (RGB uint8 tuples) and pattern of one subject."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    shirt_front: tuple[int, int, int]
    pants: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool
    shorts: bool


RADII_KEYS = ("upper_arm", "forearm", "thigh", "shin", "torso", "neck", "head", "hand", "foot", "foot_length",
              "hand_length")
PALETTE_KEYS = ("skin", "hair", "shirt", "shirt_front", "pants", "shoes")


@dataclass(frozen=True)
class Subject:
    """A fixed set of proportions (bone lengths, limb thickness) and a fixed appearance."""

    bones: dict[str, float]
    build: float
    appearance: Appearance
    ident: int = -1
    radii: dict[str, float] = field(default_factory=dict)
    # derived once per subject: the lengths forward_kinematics scales its unit vectors with, the radii
    # in RADII_KEYS order and the colours in PALETTE_KEYS order, as arrays
    fk_lengths: np.ndarray = field(init=False, repr=False, compare=False)
    radii_mm: np.ndarray = field(init=False, repr=False, compare=False)
    palette: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes = np.array([self.bones[k] for k in BONE_TEMPLATE] + [self.radii[k] for k in RADII_KEYS])
        object.__setattr__(self, "fk_lengths", sizes[_FK_SIZE_INDEX] * _FK_SIZE_FACTOR)
        object.__setattr__(self, "radii_mm", sizes[len(BONE_TEMPLATE):])
        object.__setattr__(self, "palette", np.array([getattr(self.appearance, k) for k in PALETTE_KEYS]))


_SKIN = ((255, 224, 196), (241, 194, 150), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))
# integer colour channels drawn per subject, each in [low, high): hair, shirt, pants, shoes
_COLOUR_RANGES = ((10, 120), (20, 235), (15, 200), (5, 90))
_N_SUBJECT_DRAWS = 1 + len(BONE_TEMPLATE) + 2 + 12 + 6 + 2


def sample_subject(rng: np.random.Generator, cfg: BodyConfig, ident: int = -1) -> Subject:
    """Draw proportions within cfg's ranges and a clothing/skin appearance."""
    u = iter(rng.random(_N_SUBJECT_DRAWS).tolist())  # one block draw; python floats from here on
    lo, hi = cfg.height_scale
    hs = lo + (hi - lo) * next(u)
    j = cfg.bone_jitter
    bones = {b: t * hs * (1 + j * (2 * next(u) - 1)) for b, t in BONE_TEMPLATE.items()}
    build = cfg.build[0] + (cfg.build[1] - cfg.build[0]) * next(u)
    k = (len(_SKIN) - 1) * next(u)
    i = int(k)
    lo_skin, hi_skin = _SKIN[i], _SKIN[min(i + 1, len(_SKIN) - 1)]
    skin = tuple(int(a * (1 - (k - i)) + b * (k - i)) for a, b in zip(lo_skin, hi_skin, strict=True))
    hair, shirt, pants, shoes = (tuple(lo + int(next(u) * (hi - lo)) for _ in range(3)) for lo, hi in _COLOUR_RANGES)
    signs = [-1.0 if next(u) < 0.5 else 1.0 for _ in range(3)]
    front = tuple(int(min(255.0, max(0.0, c + s * (60 + 50 * next(u))))) for c, s in zip(shirt, signs, strict=True))
    app = Appearance(skin=skin, hair=hair, shirt=shirt, shirt_front=front, pants=pants, shoes=shoes,
                     long_sleeves=next(u) < 0.6, shorts=next(u) < 0.25)
    radii = {"upper_arm": 46.0 * build, "forearm": 38.0 * build, "thigh": 72.0 * build, "shin": 52.0 * build,
             "torso": 120.0 * build, "neck": 45.0 * build, "head": 102.0 * hs, "hand": 42.0, "foot": 45.0,
             "foot_length": 190.0 * hs, "hand_length": 95.0 * hs}
    return Subject(bones=bones, build=build, appearance=app, ident=ident, radii=radii)


def rot_x(deg: float) -> np.ndarray:
    """Rotation about the body x axis (positive turns +y towards +z)."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    """Rotation about the vertical axis (positive turns +z towards +x)."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    """Rotation about the body z axis (positive turns +x towards +y)."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Extra points after the 18 joints: foot and hand tips, head centre, face centre, chest front.
R_TOE, L_TOE, R_HAND, L_HAND, HEAD_C, FACE_C, CHEST_C = range(18, 25)
NUM_POINTS = 25

_DOWN = np.array([0.0, -1.0, 0.0])
_UP = np.array([0.0, 1.0, 0.0])
_FWD = np.array([0.0, 0.0, 1.0])
_NOSE_DIR = np.array([0.0, 0.75, 0.66]) / np.linalg.norm([0.0, 0.75, 0.66])
_TOP_DIR = np.array([0.0, 0.95, -0.3]) / np.linalg.norm([0.0, 0.95, -0.3])
_SHO_DIR = np.array([1.0, -0.17, 0.0]) / np.linalg.norm([1.0, -0.17, 0.0])
_HIP_DIR = np.array([1.0, -0.08, 0.0]) / np.linalg.norm([1.0, -0.08, 0.0])
_MIRROR = np.array([-1.0, 1.0, 1.0])  # right side = left side mirrored in x


@dataclass
class Posed:
    """Body-frame points (joints and the extra points the renderer needs) and the facing directions."""

    points: np.ndarray  # (NUM_POINTS,3): 18 joints, toes, hands, head/face centre, chest front
    head_forward: np.ndarray
    chest_forward: np.ndarray
    root_rotation: np.ndarray

    @property
    def joints(self) -> np.ndarray:
        """(18,3) h36m18 joints."""
        return self.points[:NUM_JOINTS]

    @property
    def toes(self) -> np.ndarray:
        """(2,3) right, left foot tips."""
        return self.points[R_TOE:L_TOE + 1]

    @property
    def hands(self) -> np.ndarray:
        """(2,3) right, left hand tips."""
        return self.points[R_HAND:L_HAND + 1]


# Elementary rotations of forward_kinematics: (axis, angle name, sign). The first 21 form seven chains
# of three (rows k, k+7, k+14 multiply left to right): root, spine, r/l hip, head, r/l shoulder;
# the last five are single hinges: chest, r/l knee, r/l elbow.
_ROTATIONS = (
    ("y", "yaw", 1), ("y", "spine_twist", 1), ("z", "r_hip_abd", -1), ("z", "l_hip_abd", 1),
    ("y", "head_yaw", 1), ("z", "r_sho_abd", -1), ("z", "l_sho_abd", 1),
    ("x", "pitch", 1), ("z", "spine_lat", 1), ("x", "r_hip_flex", -1), ("x", "l_hip_flex", -1),
    ("z", "head_lat", 1), ("x", "r_sho_flex", -1), ("x", "l_sho_flex", -1),
    ("z", "roll", 1), ("x", "spine_bend", 1), ("y", "r_hip_rot", -1), ("y", "l_hip_rot", 1),
    ("x", "head_pitch", 1), ("y", "r_sho_rot", -1), ("y", "l_sho_rot", 1),
    ("x", "chest_bend", 1), ("x", "r_knee", 1), ("x", "l_knee", 1), ("x", "r_elbow", -1), ("x", "l_elbow", -1),
)
# flat 3x3 positions of (1, cos, cos, sin, -sin) per axis, matching rot_x / rot_y / rot_z
_AXIS_POS = {"x": (0, 4, 8, 7, 5), "y": (4, 0, 8, 2, 6), "z": (8, 0, 4, 3, 1)}
_ROT_INDEX = np.array([IDX[r[1]] for r in _ROTATIONS])
_ROT_SIGN = np.array([r[2] for r in _ROTATIONS], dtype=np.float64)
_ROT_FLAT = [np.array([9 * i + _AXIS_POS[r[0]][k] for i, r in enumerate(_ROTATIONS)]) for k in range(5)]
# Frames after forward_kinematics' products, in this order.
(_F_ROOT, _F_SPINE, _F_RHIP, _F_LHIP, _F_CHEST, _F_RKNEE, _F_LKNEE, _F_HEAD, _F_RSHO, _F_LSHO, _F_RELB,
 _F_LELB) = range(12)
_TOE_DIR = rot_x(-80.0) @ _DOWN
# (frame, unit vector in that frame, length key, factor, parent point or -1, child point): the body as
# vectors from a parent point; length keys are bone names, or radii names times the factor.
_VECTORS = (
    (_F_ROOT, _HIP_DIR * _MIRROR, "hip", 1.0, PELVIS, R_HIP), (_F_RHIP, _DOWN, "thigh", 1.0, R_HIP, R_KNEE),
    (_F_RKNEE, _DOWN, "shin", 1.0, R_KNEE, R_ANKLE), (_F_RKNEE, _TOE_DIR, "foot_length", 1.0, R_ANKLE, R_TOE),
    (_F_ROOT, _HIP_DIR, "hip", 1.0, PELVIS, L_HIP), (_F_LHIP, _DOWN, "thigh", 1.0, L_HIP, L_KNEE),
    (_F_LKNEE, _DOWN, "shin", 1.0, L_KNEE, L_ANKLE), (_F_LKNEE, _TOE_DIR, "foot_length", 1.0, L_ANKLE, L_TOE),
    (_F_SPINE, _UP, "lower_spine", 1.0, PELVIS, SPINE), (_F_CHEST, _UP, "upper_spine", 1.0, SPINE, NECK),
    (_F_HEAD, _NOSE_DIR, "neck_nose", 1.0, NECK, NOSE), (_F_HEAD, _TOP_DIR, "nose_head", 1.0, NOSE, HEAD),
    (_F_CHEST, _SHO_DIR * _MIRROR, "shoulder", 1.0, NECK, R_SHO), (_F_RSHO, _DOWN, "upper_arm", 1.0, R_SHO, R_ELB),
    (_F_RELB, _DOWN, "forearm", 1.0, R_ELB, R_WRI), (_F_RELB, _DOWN, "hand_length", 1.0, R_WRI, R_HAND),
    (_F_CHEST, _SHO_DIR, "shoulder", 1.0, NECK, L_SHO), (_F_LSHO, _DOWN, "upper_arm", 1.0, L_SHO, L_ELB),
    (_F_LELB, _DOWN, "forearm", 1.0, L_ELB, L_WRI), (_F_LELB, _DOWN, "hand_length", 1.0, L_WRI, L_HAND),
    # head centre = nose-head midpoint pushed back, face centre = head centre pushed forward, chest front
    (_F_HEAD, _FWD, "head", -0.3, -1, HEAD_C), (_F_HEAD, _FWD, "head", 0.25, -1, FACE_C),
    (_F_CHEST, _FWD, "torso", 0.55, -1, CHEST_C),
)
# where each vector's length sits in [bones in BONE_TEMPLATE order, radii in RADII_KEYS order], and its factor
_FK_SIZE_INDEX = np.array([list(BONE_TEMPLATE).index(v[2]) if v[2] in BONE_TEMPLATE
                           else len(BONE_TEMPLATE) + RADII_KEYS.index(v[2]) for v in _VECTORS])
_FK_SIZE_FACTOR = np.array([v[3] for v in _VECTORS])
_VEC_FRAME = np.array([v[0] for v in _VECTORS])
_VEC_DIR = np.stack([v[1] for v in _VECTORS])[:, :, None]


def _point_weights() -> np.ndarray:
    """(NUM_POINTS, vectors) matrix W with points = W @ vectors (the kinematic tree summed along each path)."""
    W = np.zeros((NUM_POINTS, len(_VECTORS)))
    for k, (_, _, _, _, parent, child) in enumerate(_VECTORS):
        if parent >= 0:
            W[child] = W[parent]
        W[child, k] = 1.0
    W[THORAX] = (W[L_SHO] + W[R_SHO]) / 2
    W[HEAD_C] += (W[NOSE] + W[HEAD]) / 2
    W[FACE_C] += (W[NOSE] + W[HEAD]) / 2
    W[CHEST_C] += 0.65 * W[THORAX] + 0.35 * W[PELVIS]
    return W


_POINT_WEIGHTS = _point_weights()


def _elementary_rotations(angles: np.ndarray) -> np.ndarray:
    """(26,3,3) rotations of _ROTATIONS from an angle vector in poses.ANGLE_NAMES order (degrees)."""
    t = np.radians(angles[_ROT_INDEX] * _ROT_SIGN)
    c, s = np.cos(t), np.sin(t)
    M = np.zeros(9 * len(_ROTATIONS))
    M[_ROT_FLAT[0]] = 1.0
    M[_ROT_FLAT[1]] = c
    M[_ROT_FLAT[2]] = c
    M[_ROT_FLAT[3]] = s
    M[_ROT_FLAT[4]] = -s
    return M.reshape(-1, 3, 3)


def forward_kinematics(subject: Subject, a: dict[str, float] | np.ndarray) -> Posed:
    """Joint positions from angles (degrees): a dict with the keys of poses.ANGLE_NAMES or a vector in that order."""
    E = _elementary_rotations(angles_vector(a) if isinstance(a, dict) else np.asarray(a, dtype=np.float64))
    P = E[0:7] @ E[7:14] @ E[14:21]  # root, spine, r/l hip, head, r/l shoulder (local chains)
    X = P[0] @ P[1:4]  # spine, r/l hip in the body frame
    Y = X @ E[21:24]  # chest, r/l knee
    Z = Y[0] @ P[4:7]  # head, r/l shoulder
    W = Z[1:3] @ E[24:26]  # r/l elbow
    F = np.concatenate([P[:1], X, Y, Z, W])
    vectors = (F[_VEC_FRAME] @ _VEC_DIR)[:, :, 0] * subject.fk_lengths[:, None]
    pts = _POINT_WEIGHTS @ vectors
    return Posed(points=pts, head_forward=F[_F_HEAD, :, 2], chest_forward=F[_F_CHEST, :, 2],
                 root_rotation=F[_F_ROOT])
