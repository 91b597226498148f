"""Camera pickles of Human3.6M / MPI-INF-3DHP: safe loading, key lookup and the distortion model.

A ``cameras.pkl`` is a Python pickle, and unpickling an untrusted file can run arbitrary code. So
(1) the file is only read from inside the configured dataset root (:func:`load_cameras` refuses any
other path), and (2) it is read with an unpickler that only accepts builtins and numpy arrays,
which is all these files contain.

Each camera is a dict with ``f`` (2,1), ``c`` (2,1) in pixels, and for Human3.6M ``k`` (3,1) radial
and ``p`` (2,1) tangential distortion; ``R``/``T`` (world->camera) are ignored because the npz ``S``
is already in the camera frame. ``w``/``h`` are ignored: image sizes come from the image files
(the 3DHP train pickle stores h=204, the Human3.6M one h=1000 for a 1000x1002 image).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posereg.data.records import resolve_inside
from posereg.errors import DataError

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("collections", "OrderedDict"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy arrays and plain containers."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a camera file")
        return super().find_class(module, name)


def load_cameras(root: Path, relative: str | Path, setting: str) -> dict[Any, dict[str, Any]]:
    """The camera dict of a pickle inside root (paths outside root are refused with a ConfigError)."""
    path = resolve_inside(root, relative, setting)
    if not path.is_file():
        raise DataError(f"{setting}: camera file {path} does not exist; layout: docs/datasets.md")
    try:
        with open(path, "rb") as fh:
            cams = _ArrayUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{setting}: camera file {path} cannot be read ({e}); it must be a pickled dict of "
                        "numpy arrays") from None
    if not isinstance(cams, dict):
        raise DataError(f"{setting}: camera file {path} holds a {type(cams).__name__}, expected a dict")
    return cams


@dataclass(frozen=True)
class Camera:
    """Intrinsics (fx, fy, cx, cy) in image pixels plus optional radial k1..k3 and tangential p1, p2."""

    intrinsics: np.ndarray
    k: np.ndarray | None = None
    p: np.ndarray | None = None

    @property
    def has_distortion(self) -> bool:
        """Whether any distortion coefficient is non-zero."""
        return bool(self.k is not None and np.any(self.k)) or bool(self.p is not None and np.any(self.p))

    def distort(self, xy: np.ndarray) -> np.ndarray:
        """Distort normalized coordinates (..., 2) = (X/Z, Y/Z) with the Brown-Conrady model (H36M toolbox)."""
        if not self.has_distortion:
            return xy
        k = np.zeros(3) if self.k is None else self.k
        p = np.zeros(2) if self.p is None else self.p
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
        tan = 2 * (p[1] * x + p[0] * y)  # the H36M toolbox's ordering of p1, p2
        xd = x * (radial + tan) + p[1] * r2
        yd = y * (radial + tan) + p[0] * r2
        return np.stack([xd, yd], axis=-1)

    def project(self, points_cam: np.ndarray, distort: bool = True) -> np.ndarray:
        """Image pixels (..., 2) of camera-frame points (..., 3), with the distortion model when distort."""
        pts = np.asarray(points_cam, dtype=np.float64)
        xy = pts[..., :2] / pts[..., 2:3]
        if distort:
            xy = self.distort(xy)
        fx, fy, cx, cy = self.intrinsics
        return np.stack([fx * xy[..., 0] + cx, fy * xy[..., 1] + cy], axis=-1)


def _vec(cam: dict[str, Any], key: str, n: int, where: str) -> np.ndarray:
    if key not in cam:
        raise DataError(f"{where}: camera has no {key!r} (keys: {sorted(cam)})")
    arr = np.asarray(cam[key], dtype=np.float64).reshape(-1)
    if arr.size < n or not np.isfinite(arr).all():
        raise DataError(f"{where}: camera {key!r} = {arr.tolist()} is not {n} finite numbers")
    return arr[:n]


def get_camera(cameras: dict[Any, dict[str, Any]], key: Any, where: str) -> Camera:
    """The Camera stored under key; a DataError naming the key and some existing keys when absent."""
    if key not in cameras:
        some = ", ".join(repr(k) for k in list(cameras)[:4])
        raise DataError(f"{where}: camera key {key!r} is not in the camera file ({len(cameras)} keys, e.g. "
                        f"{some}); the image name and the camera file do not belong together")
    cam = cameras[key]
    f = _vec(cam, "f", 2, where)
    c = _vec(cam, "c", 2, where)
    k = _vec(cam, "k", 3, where) if "k" in cam else None
    p = _vec(cam, "p", 2, where) if "p" in cam else None
    return Camera(intrinsics=np.array([f[0], f[1], c[0], c[1]]), k=k, p=p)
