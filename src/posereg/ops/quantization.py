"""Quantization error of volumetric heat maps: argmax vs soft-argmax decoding (SSP-Net Table 4).

Root-relative poses (mm) are encoded into an s^3 grid over a cube of side `cube_mm` centred at the
root (unit z_n = z / cube + 0.5, the platform convention) and decoded three ways:
argmax of a Gaussian target (the cell centre: the quantization the paper measures), soft-argmax of
the log of a sharp Gaussian target of `sigma_cells` (biased near the cube faces, where the Gaussian
is truncated), and soft-argmax of the log of a trilinear splat over the cell centres (exact except in
the outer half cell, which no expectation over cell centres can reach). Joints outside the cube are
left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from posereg.errors import ConfigError
from posereg.ops.decode import argmax_decode
from posereg.ops.integral import soft_argmax
from posereg.ops.targets import inside_mask

# Mean distance from the centre of a unit cube to a uniform point inside it.
CUBE_MEAN_DIST = 0.480296


def analytic_voxel_error_mm(size: int, cube_mm: float = 2000.0) -> float:
    """Mean Euclidean error (mm) of decoding uniform points to their voxel centre."""
    return CUBE_MEAN_DIST * cube_mm / size


def _gaussian_logits(unit: torch.Tensor, size: int, sigma_cells: float) -> torch.Tensor:
    """Log-Gaussian volumes (1,M,s,s,s) centred at unit points (M,3) ordered (x,y,z)."""
    centres = torch.arange(size, dtype=unit.dtype, device=unit.device) + 0.5
    per_axis = [-((centres - unit[:, k, None] * size) ** 2) / (2 * sigma_cells**2) for k in range(3)]
    lx, ly, lz = per_axis
    vol = lz[:, :, None, None] + ly[:, None, :, None] + lx[:, None, None, :]
    return vol.unsqueeze(0)


def _splat_logits(unit: torch.Tensor, size: int) -> torch.Tensor:
    """Log of trilinear splats (1,M,s,s,s) of unit points (M,3) onto the neighbouring cell centres."""
    factors = []
    for k in range(3):
        c = (unit[:, k] * size - 0.5).clamp(0, size - 1)
        j = c.floor().clamp(max=max(size - 2, 0))
        f = c - j
        w = torch.zeros(unit.shape[0], size, dtype=unit.dtype, device=unit.device)
        w.scatter_(1, j.long()[:, None], (1 - f)[:, None])
        if size > 1:
            w.scatter_add_(1, (j.long() + 1)[:, None], f[:, None])
        factors.append(w)
    wx, wy, wz = factors
    vol = wz[:, :, None, None] * wy[:, None, :, None] * wx[:, None, None, :]
    return torch.log(vol.clamp_min(1e-30)).unsqueeze(0)


def quantization_errors(
    poses_mm: torch.Tensor,
    size: int,
    cube_mm: float = 2000.0,
    sigma_cells: float = 0.5,
    chunk: int = 256,
) -> dict[str, float]:
    """Mean argmax and soft-argmax decoding errors (mm) of root-relative poses (N,J,3) on an s^3 grid."""
    if poses_mm.dim() != 3 or poses_mm.shape[-1] != 3:
        raise ConfigError(f"poses must be (N,J,3) root-relative mm, got shape {tuple(poses_mm.shape)}")
    if size < 1 or cube_mm <= 0:
        raise ConfigError(f"grid size must be >= 1 and cube_mm > 0, got size={size}, cube_mm={cube_mm}")
    unit = poses_mm.reshape(-1, 3).to(torch.float32) / cube_mm + 0.5
    keep = inside_mask(unit[None])[0]
    unit = unit[keep]
    err_arg, err_soft, err_splat = [], [], []
    for start in range(0, unit.shape[0], chunk):
        u = unit[start : start + chunk]
        logits = _gaussian_logits(u, size, sigma_cells)
        err_arg.append((argmax_decode(logits)[0] - u).norm(dim=-1))
        err_soft.append((soft_argmax(logits)[0] - u).norm(dim=-1))
        err_splat.append((soft_argmax(_splat_logits(u, size))[0] - u).norm(dim=-1))
    n = int(unit.shape[0])
    mean = lambda errs: float(torch.cat(errs).mean() * cube_mm) if n else float("nan")
    return {
        "size": size,
        "cell_mm": cube_mm / size,
        "argmax_mm": mean(err_arg),
        "soft_argmax_mm": mean(err_soft),
        "soft_argmax_splat_mm": mean(err_splat),
        "sigma_cells": sigma_cells,
        "analytic_mm": analytic_voxel_error_mm(size, cube_mm),
        "n_points": n,
        "n_outside": int((~keep).sum()),
    }


def quantization_table(
    poses_mm: torch.Tensor,
    sizes: Sequence[int] = (4, 8, 16, 32),
    cube_mm: float = 2000.0,
    sigma_cells: float = 0.5,
) -> list[dict[str, float]]:
    """One row per grid size: argmax vs soft-argmax decoding error (mm) and the analytic voxel error."""
    return [quantization_errors(poses_mm, int(s), cube_mm, sigma_cells) for s in sizes]
