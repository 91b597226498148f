"""DeepPose's refinement loss: the L2 of a joint's correction in the units of the crop it was refined in.

Toshev & Szegedy train stage s on ||N(y_i; b) - ψ_i||², N(y; b) = (y - b_c) / b_w: the ground truth relative to
the crop box b (centre b_c, side b_w) the stage looked at, so a joint counts the same in a small person as in
a large one. The refined joint is y_i^s = b_c + b_w ψ_i (`posereg.nets.deeppose`), so the loss is the L2 of
N(y_i^s; b) - N(y_i; b), per axis weighted, summed over joints and divided by the batch like posereg's other
terms. It applies to the outputs of refined stages, whose dicts carry `crop_centre` and `crop_side`.
"""

from __future__ import annotations

from typing import Any

import torch

from posereg.codecs import CoordTargets
from posereg.losses.terms import LossTerm, coord_loss


def crop_offsets(points: torch.Tensor, centre: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """N(y; b) = (y - b_c) / b_w: (B,J,2) points relative to per-joint boxes (centre (B,J,2), side (B,J,2))."""
    return (points[..., :2] - centre) / side


class CropL2(LossTerm):
    """L2 of the refined joints against the ground truth, both in their crop's units (DeepPose stages >= 2)."""

    needs = "crop_side"

    def value(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        centre, side = output["crop_centre"], output["crop_side"]
        pred = crop_offsets(output["coords"], centre, side)
        return coord_loss(pred, crop_offsets(targets.coords, centre, side), targets.weights[..., :2], "l2")
