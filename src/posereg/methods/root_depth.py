"""Absolute root depth from one output's features: training term, evaluation error, and decoding with it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric

from posereg.codecs import input_hw
from posereg.metrics.batch import mask_3d
from posereg.nets.root_depth import RootDepthMLP, root_depth_loss

EVAL_MODES = ("gt", "estimated")


def has_3d_root(batch: dict[str, Any]) -> torch.Tensor:
    """(B,) bool: samples whose root depth is a label (some joint carries a z weight)."""
    return mask_3d(batch).any(dim=-1)


class RootDepthEstimator(nn.Module):
    """The SSP-Net §4.3.1 MLP on the features of output `feature_index`, with its loss weight and eval mode.

    ``eval_mode="gt"`` keeps the ground-truth root depth ("AZ") for decoding and only reports the
    estimate's error; ``"estimated"`` decodes camera-frame joints with the estimate, as the paper's
    headline Human3.6M number does.
    """

    def __init__(self, mlp: RootDepthMLP, feature_index: int, input_size: Any, weight: float = 1.0,
                 eval_mode: str = "gt"):
        super().__init__()
        self.mlp = mlp
        self.feature_index = int(feature_index)
        self.input_hw = input_hw(input_size)
        self.weight = float(weight)
        self.eval_mode = eval_mode
        self.errors = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})

    def forward(self, outputs: list[dict[str, Any]], camera: torch.Tensor) -> torch.Tensor:
        """(B,) root depth in mm from the outputs of one forward pass and the crop cameras."""
        return self.mlp(outputs[self.feature_index]["features"].float(), camera.float(), self.input_hw)

    def loss(self, pred_mm: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """L1 in metres over the samples with a 3D root."""
        return root_depth_loss(pred_mm, batch["root_depth"].to(pred_mm.dtype), has_3d_root(batch))

    def update_error(self, stage: str, pred_mm: torch.Tensor, batch: dict[str, Any]) -> None:
        """Accumulate |estimate - GT| in mm over the samples with a 3D root."""
        valid = has_3d_root(batch)
        err = (pred_mm.double() - batch["root_depth"].double()).abs()[valid]
        if err.numel():
            self.errors[stage].update(err)

    def decoding_batch(self, pred_mm: torch.Tensor, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch the codec decodes with: GT root depth, or the estimate in its place."""
        if self.eval_mode != "estimated":
            return batch
        return {**batch, "root_depth": pred_mm.to(batch["root_depth"].dtype)}
