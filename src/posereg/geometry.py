"""Affine crop maps, their inverses, and pinhole projection / back-projection (numpy and torch).

Pixel convention (DESIGN section 3): continuous coordinates, the top-left image corner is (0, 0),
the centre of pixel (row i, col j) is (j + 0.5, i + 0.5). A horizontal flip of a crop of width W
therefore maps x to W - x.

Crops are similarities: ``A = [s R F | t]`` with scale s, rotation R and optional flip F. Such a
crop of a pinhole image is again a pinhole image *of rotated/reflected camera-frame points*:

* a crop rotated by ``rotation_deg`` corresponds to rotating ``joints_3d`` about the camera z
  (optical) axis by the same angle (:func:`rotate_points_about_optical_axis`);
* a flipped crop corresponds to negating camera X (and swapping left/right labels, done by the
  caller with ``JointSet.flip_index``).

:func:`crop_points_transform` returns that 3x3 camera-frame matrix for any crop affine, and
:func:`crop_camera` the crop's intrinsics, so ``project(M @ X, crop_camera(K, A)) == apply_affine(A,
project(X, K))`` exactly when fx == fy (or when the crop is not rotated).

Functions marked "numpy and torch" take either array type and return the same type.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(xs: list[Any], like: Any) -> Any:
    if _is_torch(like):
        import torch

        return torch.stack(xs, dim=-1)
    return np.stack(xs, axis=-1)


def _pair(v: Any) -> tuple[float, float]:
    if np.ndim(v) == 0:
        return float(v), float(v)
    a, b = v
    return float(a), float(b)


def rotation_2d(rotation_deg: float) -> np.ndarray:
    """2x2 matrix that rotates image content counter-clockwise on screen (y down), like cv2."""
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, s], [-s, c]])


def crop_transform(center: Any, size: Any, out_size: Any, rotation_deg: float = 0.0,
                   flip: bool = False) -> np.ndarray:
    """(2,3) image->crop affine: the box of side ``size`` (or (w, h)) at ``center`` fills ``out_size``.

    The crop content is rotated by ``rotation_deg`` counter-clockwise on screen about the box centre,
    then mirrored horizontally when ``flip``.
    """
    cx, cy = _pair(center)
    sw, sh = _pair(size)
    ow, oh = _pair(out_size)
    lin = np.diag([ow / sw, oh / sh]) @ rotation_2d(rotation_deg)
    t = np.array([ow / 2, oh / 2]) - lin @ np.array([cx, cy])
    A = np.concatenate([lin, t[:, None]], axis=1)
    if flip:
        A = np.array([[-1.0, 0.0, ow], [0.0, 1.0, 0.0]]) @ np.vstack([A, [0.0, 0.0, 1.0]])
    return A


def invert_affine(A: Any) -> Any:
    """Inverse of a (..., 2, 3) affine map (numpy and torch)."""
    lin, t = A[..., :2], A[..., 2:]
    if _is_torch(A):
        import torch

        inv = torch.linalg.inv(lin)
        return torch.cat([inv, -inv @ t], dim=-1)
    inv = np.linalg.inv(lin)
    return np.concatenate([inv, -inv @ t], axis=-1)


def compose_affine(A: Any, B: Any) -> Any:
    """The affine map x -> A(B(x)) (numpy, (2,3) each)."""
    A3 = np.vstack([A, [0.0, 0.0, 1.0]])
    B3 = np.vstack([B, [0.0, 0.0, 1.0]])
    return (A3 @ B3)[:2]


def apply_affine(A: Any, points: Any) -> Any:
    """Map points (..., 2) by A (2,3), or (B, ..., N, 2) by per-sample A (B, 2, 3) (numpy and torch)."""
    lin, t = A[..., :2], A[..., 2]
    if A.ndim == 2:
        return points @ lin.T + t
    extra = points.ndim - A.ndim  # point axes beyond the batch axes of A
    lin_t = lin.swapaxes(-1, -2)
    for _ in range(extra):
        lin_t = lin_t[..., None, :, :]
        t = t[..., None, :]
    return points @ lin_t + t[..., None, :]


def _cam(camera: Any, points: Any) -> Any:
    """Camera (...,4) broadcast against points (..., N, point_ndim): add the joint axis when batched."""
    if camera.ndim > 1 and points.ndim == camera.ndim + 1:
        return camera[..., None, :]
    return camera


def project(points_cam: Any, camera: Any) -> Any:
    """Pinhole projection of camera-frame points (..., 3) with camera (fx, fy, cx, cy) (numpy and torch)."""
    cam = _cam(camera, points_cam)
    z = points_cam[..., 2]
    x = cam[..., 0] * points_cam[..., 0] / z + cam[..., 2]
    y = cam[..., 1] * points_cam[..., 1] / z + cam[..., 3]
    return _stack([x, y], points_cam)


def back_project(uv: Any, depth: Any, camera: Any) -> Any:
    """Camera-frame points (..., 3) from pixels (..., 2) and depths (...,) (numpy and torch)."""
    cam = _cam(camera, uv)
    x = (uv[..., 0] - cam[..., 2]) * depth / cam[..., 0]
    y = (uv[..., 1] - cam[..., 3]) * depth / cam[..., 1]
    if _is_torch(uv):
        import torch

        depth = torch.as_tensor(depth, dtype=uv.dtype, device=uv.device).expand_as(x)
    else:
        depth = np.broadcast_to(np.asarray(depth, dtype=np.result_type(uv, depth)), x.shape)
    return _stack([x, y, depth], uv)


def affine_scale(A: Any) -> float:
    """Isotropic scale s of a similarity affine (sqrt of |det| of its linear part)."""
    return float(math.sqrt(abs(float(np.linalg.det(np.asarray(A, dtype=np.float64)[:, :2])))))


def crop_camera(camera_image: Any, A_image_to_crop: Any) -> np.ndarray:
    """Intrinsics (fx, fy, cx, cy) of the crop made by the similarity A from an image with camera_image.

    Valid for the camera-frame points transformed by :func:`crop_points_transform` (rotation about the
    optical axis for rotated crops, X negated for flipped crops); exact when fx == fy or unrotated.
    """
    K = np.asarray(camera_image, dtype=np.float64)
    A = np.asarray(A_image_to_crop, dtype=np.float64)
    s = affine_scale(A)
    c = A[:, :2] @ K[2:4] + A[:, 2]
    return np.array([s * K[0], s * K[1], c[0], c[1]])


def crop_points_transform(A_image_to_crop: Any) -> np.ndarray:
    """3x3 camera-frame matrix M (rotation about z, possibly with X reflection) that goes with crop A."""
    A = np.asarray(A_image_to_crop, dtype=np.float64)
    M = np.eye(3)
    M[:2, :2] = A[:, :2] / affine_scale(A)
    return M


def rotate_points_about_optical_axis(points: Any, rotation_deg: float) -> Any:
    """Rotate camera-frame points (..., 3) about z like a crop with ``rotation_deg`` rotates pixels."""
    M = np.eye(3)
    M[:2, :2] = rotation_2d(rotation_deg)
    if _is_torch(points):
        import torch

        return points @ torch.as_tensor(M.T, dtype=points.dtype, device=points.device)
    return points @ M.T


def warp_size(out_size: Any) -> tuple[int, int]:
    """(W, H) integer output size for cv2.warpAffine from an int or (W, H)."""
    w, h = _pair(out_size)
    return int(round(w)), int(round(h))


def cv2_affine(A: Any) -> np.ndarray:
    """The matrix to give cv2.warpAffine for A in continuous coordinates (cv2 indexes pixel centres)."""
    # cv2 maps integer pixel indices; our coordinates are index + 0.5, so conjugate by a half-pixel shift.
    A = np.asarray(A, dtype=np.float64)
    shift = A[:, :2] @ np.array([0.5, 0.5]) + A[:, 2] - 0.5
    return np.concatenate([A[:, :2], shift[:, None]], axis=1)
