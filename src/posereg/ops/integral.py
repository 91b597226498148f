"""Integral regression / soft-argmax: one softmax over the whole map, marginals, 1-D expectations."""

from __future__ import annotations

import torch

from posereg.errors import ConfigError
from posereg.ops.ramps import check_ramp, ramp_values


def spatial_ndim(maps: torch.Tensor) -> int:
    """Number of spatial dims of (B,J,H,W) or (B,J,D,H,W) maps (2 or 3); ConfigError otherwise."""
    if maps.dim() == 4:
        return 2
    if maps.dim() == 5:
        return 3
    raise ConfigError(f"heat maps must be (B,J,H,W) or (B,J,D,H,W), got shape {tuple(maps.shape)}")


def spatial_softmax(maps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Max-subtracted softmax of beta*maps over all cells of each (B,J) map, in float32 (float64 kept)."""
    nd = spatial_ndim(maps)
    work_dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    # Under autocast fp16/bf16 the exp of large logits would overflow; compute in float32 regardless.
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = maps.to(work_dtype)
        if beta != 1.0:
            x = x * beta
        # torch.softmax subtracts the row max internally (stable at 1e4 logits); an explicit
        # subtraction would cost one more full-size pass and buffer.
        prob = torch.softmax(x.flatten(start_dim=2), dim=-1)
    return prob.view(maps.shape[:2] + maps.shape[2 : 2 + nd])


def marginals(prob: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-axis marginals of a normalized map, ordered (p_x, p_y) or (p_x, p_y, p_z)."""
    nd = spatial_ndim(prob)
    if nd == 2:
        return prob.sum(dim=2), prob.sum(dim=3)
    # two full-size reductions instead of three: p_zy feeds both p_y and p_z
    p_zy = prob.sum(dim=4)
    return prob.sum(dim=(2, 3)), p_zy.sum(dim=2), p_zy.sum(dim=3)


def expectation(marginal: torch.Tensor, ramp: str = "center") -> torch.Tensor:
    """Expected ramp value of a 1-D marginal (..., w) -> (...)."""
    r = ramp_values(marginal.shape[-1], ramp, device=marginal.device, dtype=marginal.dtype)
    return (marginal * r).sum(dim=-1)


def soft_argmax(
    maps: torch.Tensor, ramp: str = "center", beta: float = 1.0, return_prob: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Soft-argmax of raw maps: (B,J,H,W) -> (B,J,2) as (x,y); (B,J,D,H,W) -> (B,J,3) as (x,y,z).

    Coordinates are on the ramp's own scale (`posereg.ops.ramps.to_unit` converts); with the default
    `center` ramp they are unit coordinates. With `return_prob` the normalized map is returned too.
    """
    check_ramp(ramp)
    prob = spatial_softmax(maps, beta)
    coords = torch.stack([expectation(m, ramp) for m in marginals(prob)], dim=-1)
    if return_prob:
        return coords, prob
    return coords
