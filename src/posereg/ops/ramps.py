"""Soft-argmax ramps: the value each map cell stands for, and conversion to unit coordinates."""

from __future__ import annotations

import torch

from posereg.errors import ConfigError

# center: (j+0.5)/w == unit coordinates (SSP-Net eq. 7, default);
# index: j/w - 0.5 (Sun et al. code; unit = value + 0.5);
# linspace01: j/(w-1) (Luvizon code; values are read directly as unit coordinates).
RAMPS = ("center", "index", "linspace01")


def check_ramp(ramp: str) -> str:
    """Return `ramp` if it is a known ramp name, else raise ConfigError."""
    if ramp not in RAMPS:
        raise ConfigError(f"unknown ramp {ramp!r}: set method.ramp to one of {', '.join(RAMPS)}")
    return ramp


def ramp_values(
    w: int, ramp: str = "center", device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Values (w,) that cells 0..w-1 of a map of width w stand for under `ramp`."""
    check_ramp(ramp)
    if w < 1:
        raise ConfigError(f"map width must be >= 1, got {w}")
    dtype = dtype or torch.float32
    j = torch.arange(w, device=device, dtype=dtype)
    if ramp == "center":
        return (j + 0.5) / w
    if ramp == "index":
        return j / w - 0.5
    if w == 1:
        # linspace(0, 1, 1) would put the single cell at 0; the middle keeps a 1-cell axis unbiased.
        return torch.full((1,), 0.5, device=device, dtype=dtype)
    return j / (w - 1)


def to_unit(values: torch.Tensor | float, ramp: str, w: int) -> torch.Tensor | float:
    """Convert values on `ramp`'s own scale (map width w) to unit coordinates."""
    check_ramp(ramp)
    if ramp == "index":
        return values + 0.5
    return values


def from_unit(u: torch.Tensor | float, ramp: str, w: int) -> torch.Tensor | float:
    """Convert unit coordinates to `ramp`'s own scale (map width w); inverse of `to_unit`."""
    check_ramp(ramp)
    if ramp == "index":
        return u - 0.5
    return u
