"""The square similarity crop of SynthPose in closed form (the fast path of ``transforms.crop_labels``).

Same maps as ``geometry.crop_transform`` / ``invert_affine`` / ``crop_points_transform`` /
``crop_camera`` for a square box and a square output, without the general matrix routines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimilarityCrop:
    """Image -> crop affine ``A`` (2,3), its inverse, the camera-frame matrix ``M`` (3,3) and the scale."""

    A: np.ndarray
    crop_to_image: np.ndarray
    M: np.ndarray
    scale: float

    @classmethod
    def make(cls, center: np.ndarray, size: float, out_size: int, rotation_deg: float = 0.0,
             flip: bool = False) -> SimilarityCrop:
        """The box of side ``size`` at ``center``, rotated then optionally mirrored, filling out_size^2."""
        k = out_size / size
        t = math.radians(rotation_deg)
        c, s = math.cos(t), math.sin(t)
        cx, cy = float(center[0]), float(center[1])
        h = out_size / 2
        # rows of the linear part: k * [[c, s], [-s, c]], the first negated by a flip
        a00, a01, a10, a11 = k * c, k * s, -k * s, k * c
        t0, t1 = h - (a00 * cx + a01 * cy), h - (a10 * cx + a11 * cy)
        if flip:
            a00, a01, t0 = -a00, -a01, out_size - t0
        A = np.array([[a00, a01, t0], [a10, a11, t1]])
        # the linear part is k times an orthogonal matrix: its inverse is its transpose / k^2
        i00, i01, i10, i11 = a00 / k**2, a10 / k**2, a01 / k**2, a11 / k**2
        inv = np.array([[i00, i01, -(i00 * t0 + i01 * t1)], [i10, i11, -(i10 * t0 + i11 * t1)]])
        M = np.array([[a00 / k, a01 / k, 0.0], [a10 / k, a11 / k, 0.0], [0.0, 0.0, 1.0]])
        return cls(A=A, crop_to_image=inv, M=M, scale=k)

    def points_2d(self, uv: np.ndarray) -> np.ndarray:
        """Image pixels (N,2) -> crop pixels."""
        return uv @ self.A[:, :2].T + self.A[:, 2]

    def points_3d(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points (N,3) of the image -> those of the crop (rotated about z, X negated if flipped)."""
        return points_cam @ self.M.T

    def camera(self, camera_image: np.ndarray) -> np.ndarray:
        """Crop intrinsics (fx, fy, cx, cy) from the image's."""
        K = camera_image
        c = self.A[:, :2] @ K[2:4] + self.A[:, 2]
        return np.array([self.scale * K[0], self.scale * K[1], c[0], c[1]])
