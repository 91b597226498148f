"""SynthPose body: H36M topology bone template, subjects (proportions + appearance), forward kinematics.

Body frame: x = the subject's left, y = up, z = forward (the way the subject faces), millimetres,
pelvis at the origin. Joints follow ``h36m18`` (H36M-17 in Sun's order + thorax = mean of shoulders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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


@dataclass(frozen=True)
class Subject:
    """A fixed set of proportions (bone lengths, limb thickness) and a fixed appearance."""

    bones: dict[str, float]
    build: float
    appearance: Appearance
    ident: int = -1
    radii: dict[str, float] = field(default_factory=dict)


_SKIN = np.array([[255, 224, 196], [241, 194, 150], [224, 172, 105], [198, 134, 66], [141, 85, 36],
                  [92, 56, 30]], dtype=np.float64)


def _colour(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    return int(rng.integers(lo, hi)), int(rng.integers(lo, hi)), int(rng.integers(lo, hi))


def sample_subject(rng: np.random.Generator, cfg: BodyConfig, ident: int = -1) -> Subject:
    """Draw proportions within cfg's ranges and a clothing/skin appearance."""
    hs = rng.uniform(*cfg.height_scale)
    bones = {b: t * hs * (1 + rng.uniform(-cfg.bone_jitter, cfg.bone_jitter)) for b, t in BONE_TEMPLATE.items()}
    build = float(rng.uniform(*cfg.build))
    k = rng.uniform(0, len(_SKIN) - 1)
    i = int(k)
    skin = _SKIN[i] * (1 - (k - i)) + _SKIN[min(i + 1, len(_SKIN) - 1)] * (k - i)
    shirt = _colour(rng)
    front = tuple(int(np.clip(c + rng.choice([-1, 1]) * rng.uniform(60, 110), 0, 255)) for c in shirt)
    app = Appearance(
        skin=(int(skin[0]), int(skin[1]), int(skin[2])), hair=_colour(rng, 10, 120), shirt=shirt,
        shirt_front=front, pants=_colour(rng, 15, 200), shoes=_colour(rng, 5, 90),
        long_sleeves=bool(rng.random() < 0.6), shorts=bool(rng.random() < 0.25),
    )
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


_DOWN = np.array([0.0, -1.0, 0.0])
_UP = np.array([0.0, 1.0, 0.0])
_NOSE_DIR = np.array([0.0, 0.75, 0.66]) / np.linalg.norm([0.0, 0.75, 0.66])
_TOP_DIR = np.array([0.0, 0.95, -0.3]) / np.linalg.norm([0.0, 0.95, -0.3])
_SHO_DIR = np.array([1.0, -0.17, 0.0]) / np.linalg.norm([1.0, -0.17, 0.0])
_HIP_DIR = np.array([1.0, -0.08, 0.0]) / np.linalg.norm([1.0, -0.08, 0.0])


@dataclass
class Posed:
    """Body-frame joints (18,3) plus the extra points the renderer needs (feet/hands tips, facing)."""

    joints: np.ndarray
    toes: np.ndarray  # (2,3) right, left
    hands: np.ndarray  # (2,3) right, left
    head_forward: np.ndarray
    chest_forward: np.ndarray
    root_rotation: np.ndarray


def forward_kinematics(subject: Subject, a: dict[str, float]) -> Posed:
    """Joint positions from angles (degrees, keys of poses.ANGLE_LIMITS plus yaw/pitch/roll of the root)."""
    b = subject.bones
    J = np.zeros((NUM_JOINTS, 3))
    R0 = rot_y(a["yaw"]) @ rot_x(a["pitch"]) @ rot_z(a["roll"])
    toes, hands = np.zeros((2, 3)), np.zeros((2, 3))
    for side, (hip, knee, ankle), sign in (("r", (R_HIP, R_KNEE, R_ANKLE), -1.0), ("l", (L_HIP, L_KNEE, L_ANKLE), 1.0)):
        J[hip] = R0 @ (_HIP_DIR * np.array([sign, 1.0, 1.0])) * b["hip"]
        Rh = R0 @ rot_z(sign * a[f"{side}_hip_abd"]) @ rot_x(-a[f"{side}_hip_flex"])
        Rh = Rh @ rot_y(sign * a[f"{side}_hip_rot"])
        J[knee] = J[hip] + Rh @ _DOWN * b["thigh"]
        Rk = Rh @ rot_x(a[f"{side}_knee"])
        J[ankle] = J[knee] + Rk @ _DOWN * b["shin"]
        toes[0 if side == "r" else 1] = J[ankle] + Rk @ rot_x(-80.0) @ _DOWN * subject.radii["foot_length"]
    Rs = R0 @ rot_y(a["spine_twist"]) @ rot_z(a["spine_lat"]) @ rot_x(a["spine_bend"])
    J[SPINE] = Rs @ _UP * b["lower_spine"]
    Rc = Rs @ rot_x(a["chest_bend"])
    J[NECK] = J[SPINE] + Rc @ _UP * b["upper_spine"]
    Rhd = Rc @ rot_y(a["head_yaw"]) @ rot_z(a["head_lat"]) @ rot_x(a["head_pitch"])
    J[NOSE] = J[NECK] + Rhd @ _NOSE_DIR * b["neck_nose"]
    J[HEAD] = J[NOSE] + Rhd @ _TOP_DIR * b["nose_head"]
    for side, (sho, elb, wri), sign in (("r", (R_SHO, R_ELB, R_WRI), -1.0), ("l", (L_SHO, L_ELB, L_WRI), 1.0)):
        J[sho] = J[NECK] + Rc @ (_SHO_DIR * np.array([sign, 1.0, 1.0])) * b["shoulder"]
        Ra = Rc @ rot_z(sign * a[f"{side}_sho_abd"]) @ rot_x(-a[f"{side}_sho_flex"])
        Ra = Ra @ rot_y(sign * a[f"{side}_sho_rot"])
        J[elb] = J[sho] + Ra @ _DOWN * b["upper_arm"]
        Re = Ra @ rot_x(-a[f"{side}_elbow"])
        J[wri] = J[elb] + Re @ _DOWN * b["forearm"]
        hands[0 if side == "r" else 1] = J[wri] + Re @ _DOWN * subject.radii["hand_length"]
    J[THORAX] = (J[L_SHO] + J[R_SHO]) / 2
    fwd = np.array([0.0, 0.0, 1.0])
    return Posed(joints=J, toes=toes, hands=hands, head_forward=Rhd @ fwd, chest_forward=Rc @ fwd, root_rotation=R0)
