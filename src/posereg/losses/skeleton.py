"""DeepSkeleton stage-1 loss: per-pixel sigmoid cross-entropy of fg/bg skeleton maps against rendered colours.

Targets are drawn on the fly from the batch's labels, on the model's device, at each output's resolution
(`posereg.metrics.skeleton.SkeletonMapSpec`, cached per step and size). The paper regresses the colour
values with a per-pixel sigmoid cross-entropy (it beat classifying parts, §3.2); normalization is Caffe's
SigmoidCrossEntropyLoss (a sum over cells divided by the batch size), which the paper's learning rate of
1e-5 assumes. The value is the cross-entropy minus the targets' own entropy, i.e. the per-cell KL
divergence: same gradients, but 0 for a perfect map, whereas soft targets (anti-aliased edges, half-valued
colour channels) give the plain cross-entropy a floor. The background maps of samples without a depth
order (2D-only labels) are drawn by bone index, not by depth, so their loss is masked out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from posereg.codecs import CoordTargets
from posereg.errors import ConfigError
from posereg.losses.terms import LossTerm
from posereg.metrics.skeleton import SkeletonMapSpec


def skeleton_map_loss(logits: torch.Tensor, target: torch.Tensor, ordered: torch.Tensor) -> torch.Tensor:
    """sum over cells of KL(target || sigmoid(logits)) / batch for (B,6,h,w) maps; bg channels only where `ordered`."""
    logits, target = logits.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    entropy = -(torch.xlogy(target, target) + torch.xlogy(1 - target, 1 - target))
    per = (bce - entropy).flatten(2).sum(-1)  # (B,6)
    keep = torch.ones_like(per)
    keep[:, 3:] = ordered.to(per.dtype)[:, None]
    return (per * keep).sum() / logits.shape[0]


class SkeletonMapBCE(LossTerm):
    """Per-pixel sigmoid cross-entropy of the `skeleton_logits` (B,6,h,w) of every output (DeepSkeleton stage 1)."""

    needs = "skeleton_logits"

    def __init__(self, weight: float, joint_set: str, input_size: Any, skeleton: Mapping[str, Any] | None = None):
        super().__init__(weight)
        self.spec = SkeletonMapSpec.from_settings(joint_set, input_size, skeleton)

    def value(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        logits = output["skeleton_logits"]
        if targets.batch is None:
            raise ConfigError("SkeletonMapBCE draws its targets from the batch: the codec gave none")
        key = ("skeleton_map", tuple(logits.shape[-2:]))
        if key not in cache:
            cache[key] = self.spec.render(targets.batch, logits.shape[-1])
        target, ordered = cache[key]
        return skeleton_map_loss(logits, target, ordered)
