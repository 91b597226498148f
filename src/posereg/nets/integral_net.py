"""Single-stage pose network: backbone + heat-map head (decoded by the codec's decoder) or regression head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from posereg.nets.backbone import Backbone
from posereg.nets.regression_head import RegressionHead


class IntegralNet(nn.Module):
    """Backbone -> head; returns `[{"name", "coords", "maps"?, "features"}]` (one supervised output)."""

    def __init__(self, backbone: Backbone, head: nn.Module, decoder: nn.Module | None, name: str = "out"):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.decoder = decoder
        self.output_names = [name]

    @property
    def regresses_coords(self) -> bool:
        """True when the head outputs coordinates directly (R1) rather than maps."""
        return isinstance(self.head, RegressionHead)

    def forward(self, image: torch.Tensor) -> list[dict[str, Any]]:
        """One output dict with unit `coords` (B,J,2|3), the backbone `features` and, for map heads, raw `maps`."""
        feat = self.backbone(image)[-1]
        y = self.head(feat)
        if self.regresses_coords:
            return [{"name": self.output_names[0], "coords": y, "features": feat}]
        return [{"name": self.output_names[0], "coords": self.decoder(y), "maps": y, "features": feat}]
