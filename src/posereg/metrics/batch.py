"""Read ground truth out of a collated batch (DESIGN section 2) in the frame metrics compare in."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from posereg.errors import DataError
from posereg.metrics.functional import affine_scale, crop_to_image_points


def require(d: dict[str, Any], key: str, where: str) -> Any:
    """d[key], or a DataError naming the missing key."""
    value = d.get(key)
    if value is None:
        raise DataError(f"{where}: the batch/predictions have no {key!r}; the metric needs it")
    return value


def gt_2d_image(batch: dict[str, Any]) -> Tensor:
    """Ground-truth 2D joints mapped from crop pixels to original image pixels, (B,J,2)."""
    return crop_to_image_points(require(batch, "joints_2d", "metric"), require(batch, "crop_to_image", "metric"))


def mask_2d(batch: dict[str, Any]) -> Tensor:
    """Joints with a 2D label: weights[..., 0] > 0, (B,J) bool."""
    return require(batch, "weights", "metric")[..., 0] > 0


def mask_3d(batch: dict[str, Any]) -> Tensor:
    """Joints with a 3D label: weights[..., 2] > 0, (B,J) bool."""
    return require(batch, "weights", "metric")[..., 2] > 0


def head_size_image(batch: dict[str, Any]) -> Tensor:
    """PCKh normalizer in original image pixels: crop head size x the crop's isotropic scale, (B,)."""
    hs = require(batch, "head_size", "metric").double().reshape(-1)
    return hs * affine_scale(require(batch, "crop_to_image", "metric"))


def meta_list(batch: dict[str, Any], key: str) -> list[Any] | None:
    """batch['meta'][key] as a python list (collated dict-of-lists or tensor), None when absent."""
    meta = batch.get("meta") or {}
    value = meta.get(key) if isinstance(meta, dict) else None
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value.tolist()
    return list(value)
