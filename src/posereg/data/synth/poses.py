"""Joint-angle limits and the structured pose families SynthPose samples from (degrees).

Angles live in a vector ordered like ``ANGLE_NAMES`` (``sample_angles``); ``sample_pose`` gives the
same draw as a name -> angle dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
UNSIDED = ("spine_bend", "spine_lat", "spine_twist", "chest_bend", "head_pitch", "head_yaw", "head_lat",
           "pitch", "roll", "yaw")
ANGLE_NAMES: tuple[str, ...] = tuple(f"{s}_{n}" for s in ("l", "r") for n in SIDED) + UNSIDED
IDX: dict[str, int] = {n: i for i, n in enumerate(ANGLE_NAMES)}


def limit(name: str) -> tuple[float, float]:
    """(min, max) of an angle name, with or without the 'l_'/'r_' prefix."""
    return ANGLE_LIMITS[name[2:] if name[:2] in ("l_", "r_") else name]


_LO = np.array([limit(n)[0] for n in ANGLE_NAMES])
_HI = np.array([limit(n)[1] for n in ANGLE_NAMES])
# The relaxed standing base pose: (name, mean, sigma) of the normal angles, (name, low, high) of the uniform ones.
_BASE_NORMAL = [(f"{s}_{n}", mu, sd) for s in ("l", "r")
                for n, mu, sd in (("hip_flex", 0, 6), ("hip_rot", 0, 10), ("sho_flex", 5, 18), ("sho_rot", 0, 20))]
_BASE_NORMAL += [("spine_bend", 3, 5), ("spine_lat", 0, 4), ("spine_twist", 0, 8), ("chest_bend", 2, 4),
                 ("head_pitch", 0, 12), ("head_yaw", 0, 25), ("head_lat", 0, 6), ("pitch", 0, 3), ("roll", 0, 2.5)]
_BASE_UNIFORM = [(f"{s}_{n}", lo, hi) for s in ("l", "r")
                 for n, lo, hi in (("hip_abd", -3, 12), ("knee", 0, 12), ("sho_abd", 0, 35), ("elbow", 0, 70))]
_BASE_UNIFORM += [("yaw", -180, 180)]
_N_IDX = np.array([IDX[n] for n, _, _ in _BASE_NORMAL])
_N_MU, _N_SD = (np.array([r[k] for r in _BASE_NORMAL], dtype=np.float64) for k in (1, 2))
_U_IDX = np.array([IDX[n] for n, _, _ in _BASE_UNIFORM])
_U_LO = np.array([r[1] for r in _BASE_UNIFORM], dtype=np.float64)
_U_SPAN = np.array([r[2] - r[1] for r in _BASE_UNIFORM], dtype=np.float64)
_BALL = [(IDX[f"{s}_{j}_flex"], IDX[f"{s}_{j}_abd"], CONE_LIMITS[j]) for s in ("l", "r") for j in ("hip", "sho")]


def _base(rng: np.random.Generator) -> np.ndarray:
    """A relaxed standing pose with small natural variation."""
    a = np.empty(len(ANGLE_NAMES))
    a[_N_IDX] = _N_MU + _N_SD * rng.normal(size=len(_N_IDX))
    a[_U_IDX] = _U_LO + _U_SPAN * rng.random(len(_U_IDX))
    return a


# per side: angle name without the prefix -> index in the vector
_SIDE = {side: {n: IDX[f"{side}_{n}"] for n in SIDED} for side in ("l", "r")}
_L, _R = _SIDE["l"], _SIDE["r"]


def _walking(rng: np.random.Generator, a: np.ndarray) -> None:
    phase = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(15, 35)
    for i, sign in ((_L, 1.0), (_R, -1.0)):
        sw = sign * math.sin(phase)
        a[i["hip_flex"]] = amp * sw + rng.normal(0, 4)
        a[i["knee"]] = 8 + max(0.0, -math.cos(phase) * sign) * rng.uniform(25, 60)
        a[i["sho_flex"]] = -0.8 * amp * sw + rng.normal(0, 6)
        a[i["sho_abd"]] = rng.uniform(3, 15)
        a[i["elbow"]] = rng.uniform(10, 50)


def _ranged(per_side: dict[str, tuple[float, float]], body: dict[str, tuple[float, float]]
            ) -> Callable[[np.random.Generator, np.ndarray], None]:
    """A static pose family: uniform angles per side (left, then right), then whole-body ones, in order."""

    def family(rng: np.random.Generator, a: np.ndarray) -> None:
        for i in (_L, _R):
            for name, (lo, hi) in per_side.items():
                a[i[name]] = rng.uniform(lo, hi)
        for name, (lo, hi) in body.items():
            a[IDX[name]] = rng.uniform(lo, hi)

    return family


_sitting = _ranged({"hip_flex": (70, 105), "hip_abd": (0, 25), "knee": (60, 110), "sho_flex": (10, 60),
                    "elbow": (30, 100)},
                   {"spine_bend": (-5, 20)})
_crouching = _ranged({"hip_flex": (85, 125), "hip_abd": (5, 35), "knee": (100, 150), "sho_flex": (10, 80),
                      "elbow": (10, 100)},
                     {"spine_bend": (15, 45), "chest_bend": (0, 20), "head_pitch": (-30, 5)})


def _reaching(rng: np.random.Generator, a: np.ndarray) -> None:
    sides = [(_L, _R)[int(rng.integers(2))]] if rng.random() < 0.6 else [_L, _R]
    for i in sides:
        if rng.random() < 0.5:
            a[i["sho_flex"]] = rng.uniform(70, 175)
            a[i["sho_abd"]] = rng.uniform(0, 40)
        else:
            a[i["sho_abd"]] = rng.uniform(70, 160)
            a[i["sho_flex"]] = rng.uniform(-20, 50)
        a[i["elbow"]] = rng.uniform(0, 60)
    a[IDX["spine_lat"]] = rng.normal(0, 10)
    a[IDX["spine_bend"]] = rng.uniform(-10, 30)
    if rng.random() < 0.4:  # a step
        i = (_L, _R)[int(rng.integers(2))]
        a[i["hip_flex"]] = rng.uniform(20, 60)
        a[i["knee"]] = rng.uniform(10, 60)


_FAMILY_FNS = {"walking": _walking, "sitting": _sitting, "crouching": _crouching, "reaching": _reaching}


def clip_angles(a: np.ndarray) -> np.ndarray:
    """Angle vector clipped to ANGLE_LIMITS, ball-joint flex/abd shrunk (x0.95 steps) into the cone limits."""
    out = np.minimum(np.maximum(a, _LO), _HI)
    vals = out.tolist()
    for fi, ai, cone in _BALL:
        f, ab = vals[fi], vals[ai]
        if cone_deviation(f, ab) > cone:
            k = 0.95
            while cone_deviation(f * k, ab * k) > cone:
                k *= 0.95
            out[fi], out[ai] = f * k, ab * k
    return out


def cone_deviation(flex: float, abd: float) -> float:
    """Angle (deg) between the limb and straight down for rot_z(abd) @ rot_x(-flex) applied to down."""
    c = math.cos(math.radians(flex)) * math.cos(math.radians(abd))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def angles_vector(a: dict[str, float]) -> np.ndarray:
    """Name -> angle dict as a vector in ANGLE_NAMES order."""
    return np.array([a[n] for n in ANGLE_NAMES], dtype=np.float64)


def angles_dict(v: np.ndarray) -> dict[str, float]:
    """Angle vector as a name -> angle dict."""
    return dict(zip(ANGLE_NAMES, v.tolist(), strict=True))


def sample_angles(rng: np.random.Generator, weights: dict[str, float] | None = None) -> tuple[str, np.ndarray]:
    """(family name, clipped angle vector in ANGLE_NAMES order) for one random pose."""
    w = weights or DEFAULT_FAMILY_WEIGHTS
    names = list(w)
    total = sum(w[n] for n in names)
    family = names[int(rng.choice(len(names), p=[w[n] / total for n in names]))]
    a = _base(rng)
    if family in _FAMILY_FNS:
        _FAMILY_FNS[family](rng, a)
    return family, clip_angles(a)


def sample_pose(rng: np.random.Generator, weights: dict[str, float] | None = None) -> tuple[str, dict[str, float]]:
    """(family name, clipped angles by name) for one random pose."""
    family, a = sample_angles(rng, weights)
    return family, angles_dict(a)
