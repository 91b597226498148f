"""Hard (argmax) decoding of heat maps into unit coordinates (x, y[, z])."""

from __future__ import annotations

import torch

from posereg.ops.integral import spatial_ndim


def _argmax_cells(maps: torch.Tensor) -> list[torch.Tensor]:
    """Per-axis integer cell index of each map's maximum, ordered like the map dims (z, y, x)."""
    nd = spatial_ndim(maps)
    size = maps.shape[2:]
    flat = maps.flatten(start_dim=2).argmax(dim=-1)
    idx = []
    for n in reversed(size):
        idx.append(flat % n)
        flat = flat // n
    return idx[::-1][-nd:]


def argmax_decode(maps: torch.Tensor) -> torch.Tensor:
    """Unit coords (B,J,2|3) of the centre of each map's maximal cell, ordered (x, y[, z])."""
    size = maps.shape[2:]
    cells = _argmax_cells(maps)
    dtype = maps.dtype if maps.is_floating_point() and maps.dtype != torch.float16 else torch.float32
    coords = [(c.to(dtype) + 0.5) / n for c, n in zip(cells, size, strict=True)]
    return torch.stack(coords[::-1], dim=-1)


def argmax_decode_quarter_offset(maps: torch.Tensor) -> torch.Tensor:
    """Argmax decode shifted a quarter cell toward the higher neighbour on each axis (Hourglass-style).

    No shift on an axis where the two neighbours are equal or one lies outside the map.
    """
    size = maps.shape[2:]
    cells = _argmax_cells(maps)
    dtype = maps.dtype if maps.is_floating_point() and maps.dtype != torch.float16 else torch.float32
    coords = []
    for axis, (c, n) in enumerate(zip(cells, size, strict=True)):
        lo = (c - 1).clamp(0, n - 1)
        hi = (c + 1).clamp(0, n - 1)
        v_lo = _gather_at(maps, cells, axis, lo)
        v_hi = _gather_at(maps, cells, axis, hi)
        has_both = (c > 0) & (c < n - 1)
        shift = 0.25 * torch.sign(v_hi - v_lo).to(dtype) * has_both.to(dtype)
        coords.append((c.to(dtype) + 0.5 + shift) / n)
    return torch.stack(coords[::-1], dim=-1)


def _gather_at(maps: torch.Tensor, cells: list[torch.Tensor], axis: int, value: torch.Tensor) -> torch.Tensor:
    """Map value at `cells` with the index on `axis` replaced by `value`, (B,J)."""
    size = maps.shape[2:]
    flat = torch.zeros_like(value)
    for k, n in enumerate(size):
        flat = flat * n + (value if k == axis else cells[k])
    return maps.flatten(start_dim=2).gather(-1, flat.unsqueeze(-1)).squeeze(-1)
