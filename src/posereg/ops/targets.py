"""Heat-map targets built on the fly from unit coordinates, vectorized on the coordinates' device.

Cell j of an axis of width w covers unit [j/w, (j+1)/w) and its centre is (j+0.5)/w (the `center`
ramp). Coordinates are ordered (x, y[, z]); sizes are (H, W) or (D, H, W). A joint whose coordinate
is NaN or lies outside [0, 1) on any axis gets an all-zero map (or index -1); whether such a joint
counts is decided by the loss weights, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from posereg.errors import ConfigError


def _axes(coords_unit: torch.Tensor, size: Sequence[int]) -> tuple[list[torch.Tensor], list[int]]:
    """Split coords (B,J,K) into per-axis unit tensors ordered like `size` (z, y, x)."""
    size = [int(s) for s in size]
    if len(size) not in (2, 3) or coords_unit.shape[-1] != len(size):
        raise ConfigError(
            f"coords of shape {tuple(coords_unit.shape)} do not match map size {tuple(size)}: "
            "use (B,J,2) with (H,W) or (B,J,3) with (D,H,W)"
        )
    # coords are (x, y, z); size is (D, H, W): reverse the coordinate order to match the size order.
    comps = [coords_unit[..., k] for k in range(len(size))][::-1]
    return comps, size


def inside_mask(coords_unit: torch.Tensor) -> torch.Tensor:
    """(B,J) bool: every coordinate is finite and in [0, 1)."""
    finite = torch.isfinite(coords_unit).all(dim=-1)
    return finite & ((coords_unit >= 0) & (coords_unit < 1)).all(dim=-1)


def _outer(factors: list[torch.Tensor]) -> torch.Tensor:
    """Outer product of per-axis (B,J,n_k) factors -> (B,J,n_0,...,n_{K-1})."""
    out = factors[0]
    for f in factors[1:]:
        out = out.unsqueeze(-1) * f.reshape(f.shape[:2] + (1,) * (out.dim() - 2) + f.shape[-1:])
    return out


def gaussian_heatmaps(
    coords_unit: torch.Tensor, size: Sequence[int], sigma: float, normalize_peak: bool = True
) -> torch.Tensor:
    """Gaussian maps (B,J,*size) around unit coords, sigma in cells.

    `normalize_peak=True`: value exp(-d^2/2sigma^2) (1 at the exact location); False: each map sums to 1.
    """
    if sigma <= 0:
        raise ConfigError(f"heat-map sigma must be > 0 cells, got {sigma}")
    comps, size = _axes(coords_unit, size)
    dtype = coords_unit.dtype if coords_unit.is_floating_point() else torch.float32
    inside = inside_mask(coords_unit)
    factors = []
    for c, n in zip(comps, size, strict=True):
        centres = torch.arange(n, device=coords_unit.device, dtype=dtype) + 0.5
        pos = torch.nan_to_num(c.to(dtype) * n).unsqueeze(-1)
        factors.append(torch.exp(-((centres - pos) ** 2) / (2.0 * sigma**2)))
    maps = _outer(factors) * inside.reshape(inside.shape + (1,) * len(size)).to(dtype)
    if not normalize_peak:
        total = maps.flatten(start_dim=2).sum(-1).reshape(inside.shape + (1,) * len(size))
        maps = maps / total.clamp_min(torch.finfo(dtype).tiny)
    return maps


def onehot_indices(coords_unit: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B,J) long flat index of the cell containing each coordinate; -1 when outside the map."""
    comps, size = _axes(coords_unit, size)
    inside = inside_mask(coords_unit)
    flat = torch.zeros(coords_unit.shape[:-1], dtype=torch.long, device=coords_unit.device)
    for c, n in zip(comps, size, strict=True):
        idx = torch.nan_to_num(torch.floor(c * n)).clamp(0, n - 1).long()
        flat = flat * n + idx
    return torch.where(inside, flat, torch.full_like(flat, -1))


def onehot_heatmaps(coords_unit: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B,J,*size) maps with 1 at the cell containing each coordinate (all zero when outside)."""
    comps, size = _axes(coords_unit, size)
    idx = onehot_indices(coords_unit, size)
    numel = 1
    for n in size:
        numel *= n
    dtype = coords_unit.dtype if coords_unit.is_floating_point() else torch.float32
    out = torch.zeros(idx.shape + (numel,), dtype=dtype, device=coords_unit.device)
    valid = idx >= 0
    out.scatter_(-1, idx.clamp_min(0).unsqueeze(-1), valid.unsqueeze(-1).to(dtype))
    return out.view(idx.shape + tuple(size))


def disk_heatmaps(coords_unit: torch.Tensor, size: Sequence[int], radius_cells: float) -> torch.Tensor:
    """(B,J,*size) binary maps: 1 where the cell centre lies within radius_cells of the coordinate."""
    if radius_cells < 0:
        raise ConfigError(f"disk radius must be >= 0 cells, got {radius_cells}")
    comps, size = _axes(coords_unit, size)
    dtype = coords_unit.dtype if coords_unit.is_floating_point() else torch.float32
    inside = inside_mask(coords_unit)
    d2 = None
    for k, (c, n) in enumerate(zip(comps, size, strict=True)):
        centres = torch.arange(n, device=coords_unit.device, dtype=dtype) + 0.5
        sq = (centres - torch.nan_to_num(c.to(dtype) * n).unsqueeze(-1)) ** 2
        sq = sq.reshape(sq.shape[:2] + (1,) * k + (n,) + (1,) * (len(size) - k - 1))
        d2 = sq if d2 is None else d2 + sq
    mask = (d2 <= radius_cells**2) & inside.reshape(inside.shape + (1,) * len(size))
    return mask.to(dtype)
