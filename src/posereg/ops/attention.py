"""Heat-map attention heads: attended depth, confidence, joint probability, context aggregation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from posereg.errors import ConfigError


def depth_attention(prob: torch.Tensor, depth_logits: torch.Tensor) -> torch.Tensor:
    """Heat-map-attended depth (B,J) = sum_HW prob * sigmoid(depth_logits) (SSP-Net eq. 10)."""
    if prob.shape != depth_logits.shape or prob.dim() != 4:
        raise ConfigError(
            f"depth attention needs prob and depth maps of the same (B,J,H,W) shape, "
            f"got {tuple(prob.shape)} and {tuple(depth_logits.shape)}"
        )
    d = torch.sigmoid(depth_logits.to(prob.dtype))
    return (prob * d).sum(dim=(2, 3))


def confidence_from_prob(prob: torch.Tensor) -> torch.Tensor:
    """Confidence (B,J) = max of the 2x2 stride-1 sum-pool of a normalized (B,J,H,W) map (SSP-Net §3.2.3)."""
    if prob.dim() != 4:
        raise ConfigError(f"confidence needs (B,J,H,W) maps, got {tuple(prob.shape)}")
    # Zero padding right/bottom keeps 1-cell-wide maps valid and never beats an interior window
    # (all entries are non-negative).
    padded = F.pad(prob, (0, 1, 0, 1))
    b, j, h, w = padded.shape
    pooled = F.avg_pool2d(padded.reshape(b * j, 1, h, w), kernel_size=2, stride=1) * 4.0
    return pooled.reshape(b, j, -1).amax(dim=-1)


def joint_probability(raw_maps: torch.Tensor) -> torch.Tensor:
    """Joint presence probability (B,J) = sigmoid(global max of each raw map) (Luvizon'17)."""
    if raw_maps.dim() not in (4, 5):
        raise ConfigError(f"joint probability needs (B,J,H,W) or (B,J,D,H,W) maps, got {tuple(raw_maps.shape)}")
    return torch.sigmoid(raw_maps.flatten(start_dim=2).amax(dim=-1))


def aggregate_context(
    part_xy: torch.Tensor, context_xy: torch.Tensor, context_prob: torch.Tensor, alpha: float = 0.8
) -> torch.Tensor:
    """alpha*part + (1-alpha)*sum_c p_c y_c / sum_c p_c (Luvizon'17 eq. 6), shape (B,J,K).

    With no context maps (Nc = 0) or zero total context probability the part prediction is returned.
    """
    if context_xy.dim() != part_xy.dim() + 1 or context_prob.shape != context_xy.shape[:-1]:
        raise ConfigError(
            f"context shapes do not match: part {tuple(part_xy.shape)}, context {tuple(context_xy.shape)}, "
            f"probabilities {tuple(context_prob.shape)}; expected (B,J,K), (B,J,Nc,K), (B,J,Nc)"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"context alpha must be in [0, 1], got {alpha}")
    if context_xy.shape[-2] == 0:
        return part_xy
    total = context_prob.sum(dim=-1, keepdim=True)
    has_ctx = total > 0
    # Safe denominator so the unused branch of torch.where gives finite gradients.
    weighted = (context_prob.unsqueeze(-1) * context_xy).sum(dim=-2) / torch.where(
        has_ctx, total, torch.ones_like(total)
    )
    mixed = alpha * part_xy + (1.0 - alpha) * weighted
    return torch.where(has_ctx, mixed, part_xy)
