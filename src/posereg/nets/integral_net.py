"""Single-stage networks of the Integral family: timm backbone + heat-map head (H*, I*) or regression head (R1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.backbone import Backbone
from posereg.nets.contract import Output, PoseNet
from posereg.nets.regression_head import RegressionHead

HeadFactory = Callable[..., nn.Module]


def check_input_size(input_size: int | Sequence[int] | None, stride: int, net: str) -> None:
    """ConfigError unless both input sides are multiples of the backbone stride."""
    if input_size is None:
        return
    sides = [input_size] * 2 if isinstance(input_size, int) else [int(s) for s in input_size]
    if any(s % stride for s in sides):
        raise ConfigError(f"data.input_size={sides}: {net} needs sides divisible by the backbone stride {stride}")


class HeatmapNet(PoseNet):
    """Backbone -> map head -> decoder; one output `{"name", "coords", "maps", "features"}`."""

    def __init__(
        self,
        backbone: Backbone,
        head: HeadFactory,
        decoder: nn.Module,
        num_joints: int,
        dims: int,
        input_size: int | Sequence[int] | None = None,
    ):
        super().__init__()
        check_input_size(input_size, backbone.out_stride, "this backbone")
        self.backbone = backbone
        self.head = head(in_channels=backbone.out_channels, in_stride=backbone.out_stride, num_joints=num_joints,
                         dims=dims)
        self.decoder = decoder
        self.output_names = ["out"]

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """One output with unit `coords` (B,J,2|3), raw `maps` and the backbone `features`."""
        feat = self.backbone(image)[-1]
        maps = self.head(feat)
        return [{"name": self.output_names[0], "coords": self.decoder(maps), "maps": maps, "features": feat}]


class RegressionNet(PoseNet):
    """Backbone -> global average pool -> linear (R1); one output `{"name", "coords", "features"}`."""

    produces_maps = False

    def __init__(self, backbone: Backbone, num_joints: int, dims: int, input_size: Any = None):
        super().__init__()
        check_input_size(input_size, backbone.out_stride, "this backbone")
        self.backbone = backbone
        self.head = RegressionHead(backbone.out_channels, num_joints, dims)
        self.output_names = ["out"]

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """One output with unit `coords` (B,J,dims) and the backbone `features`."""
        feat = self.backbone(image)[-1]
        return [{"name": self.output_names[0], "coords": self.head(feat), "features": feat}]
