"""Joint-angle limits and the structured pose families SynthPose samples from (degrees)."""

from __future__ import annotations

import math

import numpy as np

# Anatomical limits (min, max) per angle; hinge joints (knee, elbow) have one angle each,
# ball joints (hip, shoulder) three Euler angles additionally bounded by a cone (CONE_LIMITS).
ANGLE_LIMITS: dict[str, tuple[float, float]] = {
    "hip_flex": (-25.0, 125.0), "hip_abd": (-15.0, 45.0), "hip_rot": (-35.0, 35.0), "knee": (0.0, 150.0),
    "sho_flex": (-50.0, 175.0), "sho_abd": (-10.0, 160.0), "sho_rot": (-60.0, 60.0), "elbow": (0.0, 145.0),
    "spine_bend": (-15.0, 45.0), "spine_lat": (-20.0, 20.0), "spine_twist": (-30.0, 30.0),
    "chest_bend": (-10.0, 25.0), "head_pitch": (-35.0, 40.0), "head_yaw": (-65.0, 65.0), "head_lat": (-20.0, 20.0),
    "pitch": (-10.0, 10.0), "roll": (-8.0, 8.0), "yaw": (-180.0, 180.0),
}
# Maximum deviation of the limb from its rest direction (straight down) in the parent frame.
CONE_LIMITS: dict[str, float] = {"hip": 125.0, "sho": 175.0}
FAMILIES = ("standing", "walking", "sitting", "crouching", "reaching")
DEFAULT_FAMILY_WEIGHTS = {"standing": 0.2, "walking": 0.25, "sitting": 0.15, "crouching": 0.15, "reaching": 0.25}
SIDED = ("hip_flex", "hip_abd", "hip_rot", "knee", "sho_flex", "sho_abd", "sho_rot", "elbow")


def limit(name: str) -> tuple[float, float]:
    """(min, max) of an angle name, with or without the 'l_'/'r_' prefix."""
    return ANGLE_LIMITS[name[2:] if name[:2] in ("l_", "r_") else name]


def _base(rng: np.random.Generator) -> dict[str, float]:
    """A relaxed standing pose with small natural variation."""
    a: dict[str, float] = {}
    for s in ("l", "r"):
        a[f"{s}_hip_flex"] = rng.normal(0, 6)
        a[f"{s}_hip_abd"] = rng.uniform(-3, 12)
        a[f"{s}_hip_rot"] = rng.normal(0, 10)
        a[f"{s}_knee"] = rng.uniform(0, 12)
        a[f"{s}_sho_flex"] = rng.normal(5, 18)
        a[f"{s}_sho_abd"] = rng.uniform(0, 35)
        a[f"{s}_sho_rot"] = rng.normal(0, 20)
        a[f"{s}_elbow"] = rng.uniform(0, 70)
    a.update(spine_bend=rng.normal(3, 5), spine_lat=rng.normal(0, 4), spine_twist=rng.normal(0, 8),
             chest_bend=rng.normal(2, 4), head_pitch=rng.normal(0, 12), head_yaw=rng.normal(0, 25),
             head_lat=rng.normal(0, 6), pitch=rng.normal(0, 3), roll=rng.normal(0, 2.5), yaw=rng.uniform(-180, 180))
    return a


def _walking(rng: np.random.Generator, a: dict[str, float]) -> None:
    phase = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(15, 35)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        sw = sign * math.sin(phase)
        a[f"{s}_hip_flex"] = amp * sw + rng.normal(0, 4)
        a[f"{s}_knee"] = 8 + max(0.0, -math.cos(phase) * sign) * rng.uniform(25, 60)
        a[f"{s}_sho_flex"] = -0.8 * amp * sw + rng.normal(0, 6)
        a[f"{s}_sho_abd"] = rng.uniform(3, 15)
        a[f"{s}_elbow"] = rng.uniform(10, 50)


def _sitting(rng: np.random.Generator, a: dict[str, float]) -> None:
    for s in ("l", "r"):
        a[f"{s}_hip_flex"] = rng.uniform(70, 105)
        a[f"{s}_hip_abd"] = rng.uniform(0, 25)
        a[f"{s}_knee"] = rng.uniform(60, 110)
        a[f"{s}_sho_flex"] = rng.uniform(10, 60)
        a[f"{s}_elbow"] = rng.uniform(30, 100)
    a["spine_bend"] = rng.uniform(-5, 20)


def _crouching(rng: np.random.Generator, a: dict[str, float]) -> None:
    for s in ("l", "r"):
        a[f"{s}_hip_flex"] = rng.uniform(85, 125)
        a[f"{s}_hip_abd"] = rng.uniform(5, 35)
        a[f"{s}_knee"] = rng.uniform(100, 150)
        a[f"{s}_sho_flex"] = rng.uniform(10, 80)
        a[f"{s}_elbow"] = rng.uniform(10, 100)
    a["spine_bend"] = rng.uniform(15, 45)
    a["chest_bend"] = rng.uniform(0, 20)
    a["head_pitch"] = rng.uniform(-30, 5)


def _reaching(rng: np.random.Generator, a: dict[str, float]) -> None:
    sides = [("l", "r")[int(rng.integers(2))]] if rng.random() < 0.6 else ["l", "r"]
    for s in sides:
        if rng.random() < 0.5:
            a[f"{s}_sho_flex"] = rng.uniform(70, 175)
            a[f"{s}_sho_abd"] = rng.uniform(0, 40)
        else:
            a[f"{s}_sho_abd"] = rng.uniform(70, 160)
            a[f"{s}_sho_flex"] = rng.uniform(-20, 50)
        a[f"{s}_elbow"] = rng.uniform(0, 60)
    a["spine_lat"] = rng.normal(0, 10)
    a["spine_bend"] = rng.uniform(-10, 30)
    if rng.random() < 0.4:  # a step
        s = ("l", "r")[int(rng.integers(2))]
        a[f"{s}_hip_flex"] = rng.uniform(20, 60)
        a[f"{s}_knee"] = rng.uniform(10, 60)


_FAMILY_FNS = {"walking": _walking, "sitting": _sitting, "crouching": _crouching, "reaching": _reaching}


def clip_to_limits(a: dict[str, float]) -> dict[str, float]:
    """Clip every angle to ANGLE_LIMITS and shrink ball-joint flex/abd into the cone limits."""
    out = {}
    for k, v in a.items():
        lo, hi = limit(k)
        out[k] = min(hi, max(lo, float(v)))
    for s in ("l", "r"):
        for joint in ("hip", "sho"):
            f, ab = out[f"{s}_{joint}_flex"], out[f"{s}_{joint}_abd"]
            k = 1.0
            while cone_deviation(f * k, ab * k) > CONE_LIMITS[joint]:
                k *= 0.95
            out[f"{s}_{joint}_flex"], out[f"{s}_{joint}_abd"] = f * k, ab * k
    return out


def cone_deviation(flex: float, abd: float) -> float:
    """Angle (deg) between the limb and straight down for rot_z(abd) @ rot_x(-flex) applied to down."""
    c = math.cos(math.radians(flex)) * math.cos(math.radians(abd))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def sample_pose(rng: np.random.Generator, weights: dict[str, float] | None = None) -> tuple[str, dict[str, float]]:
    """(family name, clipped angles) for one random pose."""
    w = weights or DEFAULT_FAMILY_WEIGHTS
    names = list(w)
    p = np.asarray([w[n] for n in names], dtype=np.float64)
    family = names[int(rng.choice(len(names), p=p / p.sum()))]
    a = _base(rng)
    if family in _FAMILY_FNS:
        _FAMILY_FNS[family](rng, a)
    return family, clip_to_limits(a)
