"""DeepSkeleton stage 2 (Wan et al., §3.3): a timm ResNet regressing the 3D pose from skeleton maps alone.

Like every posereg network it takes the RGB crop, `forward(image, cut)`, and draws its regression input
itself: the crop (`source=rgb`, the paper's "direct RGB" baseline) or fg+bg skeleton maps (6 channels)
from a frozen stage-1 network attached with `attach_stage1` (`source=predicted`). Maps drawn elsewhere
(the GT maps of `source=gt`, rendered from the labels by the stage-2 module) come in as `maps=`; a map
regressor given an image alone and no stage-1 network sees an empty map (e.g. a complexity probe). The
input is resized to `regress_size` (the paper rescales its 56² maps; the size was lost, 224² assumed),
then ResNet -> global average pool -> one linear layer to J x dims values.

Targets: the paper regresses root-relative 3D camera coordinates (Zhou et al.). Here the linear layer
regresses posereg's unit coordinates (u = x_crop / W, v = y_crop / H, z_n = (z - z_root) / depth_range + 0.5),
trained with an L2 loss (the paper's Euclidean loss). With the crop camera and the root depth both are
the same pose: back-projecting (u, v) at depth z_root + (z_n - 0.5) * depth_range gives the camera-frame
joints, which is how every posereg 3D method is decoded and evaluated (with the GT root depth, as MPJPE
after root alignment needs). What differs is only how errors are weighted in the loss: x, y in crop
pixels / W instead of millimetres, z in units of 2 m. On 2D data (dims=2) the same net regresses (u, v).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.contract import Output, PoseNet
from posereg.nets.regression_head import RegressionHead
from posereg.nets.skeleton_fcn import MAP_CHANNELS, timm_backbone

SOURCES = ("gt", "predicted", "rgb")


class SkeletonRegressor(PoseNet):
    """RGB crop -> (stage-1 maps | given maps | the crop) -> resize -> ResNet -> pool -> linear; output `out`."""

    produces_maps = False

    def __init__(
        self,
        backbone: str,
        num_joints: int,
        dims: int,
        input_size: int | Sequence[int] | None = None,
        source: str = "gt",
        regress_size: int = 224,
        checkpoint: str | None = None,
        timm_kwargs: Mapping[str, Any] | None = None,
        pretrained: bool = False,
    ):
        super().__init__()
        if source not in SOURCES:
            raise ConfigError(f"method.input.source={source!r} unknown: use one of {', '.join(SOURCES)}")
        self.source = source
        self.in_chans = 3 if source == "rgb" else MAP_CHANNELS
        self.regress_size = int(regress_size)
        self.backbone = timm_backbone(backbone, checkpoint, timm_kwargs, (4,), pretrained, in_chans=self.in_chans)
        if self.regress_size <= 0 or self.regress_size % self.backbone.out_stride:
            raise ConfigError(f"method.net.regress_size={regress_size}: must be a positive multiple of the backbone "
                              f"stride {self.backbone.out_stride}")
        self.head = RegressionHead(self.backbone.out_channels, num_joints, dims)
        self.stage1: nn.Module | None = None
        self.output_names = ["out"]

    def attach_stage1(self, stage1: nn.Module) -> None:
        """Draw the maps of an image with `stage1` (a skeleton-map PoseNet), frozen and always in eval mode."""
        if self.in_chans != MAP_CHANNELS:
            raise ConfigError("method.input.source=rgb: the RGB regressor takes no stage-1 maps")
        for p in stage1.parameters():
            p.requires_grad_(False)
        self.stage1 = stage1.eval()

    def train(self, mode: bool = True) -> SkeletonRegressor:
        """Switch train/eval mode; an attached stage-1 network stays in eval mode (its BN statistics)."""
        super().train(mode)
        if self.stage1 is not None:
            self.stage1.eval()
        return self

    def regression_input(self, image: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """The tensor the ResNet reads: `maps`, else the stage-1 maps of `image`, else the crop or an empty map."""
        if maps is not None:
            if maps.shape[1] != self.in_chans:
                raise ConfigError(f"the skeleton-map regressor takes {self.in_chans}-channel maps "
                                  f"(method.input.source={self.source}), got {maps.shape[1]}")
            return maps
        if self.in_chans == 3:
            return image
        if self.stage1 is not None:
            with torch.no_grad():
                return self.stage1(image)[-1]["skeleton_logits"].float().sigmoid().to(image.dtype)
        b, _, h, w = image.shape
        return image.new_zeros(b, MAP_CHANNELS, max(h // 4, 1), max(w // 4, 1))

    def forward(self, image: torch.Tensor, cut: int | None = None, maps: torch.Tensor | None = None) -> list[Output]:
        """One output with unit `coords` (B,J,dims) and the backbone `features`."""
        x = self.regression_input(image, maps)
        side = (self.regress_size, self.regress_size)
        if tuple(x.shape[-2:]) != side:
            x = F.interpolate(x, size=side, mode="bilinear", align_corners=False)
        feat = self.backbone(x)[-1]
        return [{"name": self.output_names[0], "coords": self.head(feat), "features": feat}]
