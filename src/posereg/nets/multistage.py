"""Multi-stage ResNet (MS-H1 / MS-I1, Sun et al. 2018 §5): shared conv3 trunk, per-stage conv4/conv5 + head.

Stage 1 runs its conv4/conv5 copy on the shared conv3 (`layer2`) features. Stage s > 1 concatenates
those features with stage s-1's raw maps (volumes flattened to J*D channels), resized to the conv3
resolution, and fuses them back to the conv3 width with a 1x1 conv + BN + ReLU (our choice: the paper
does not say how the wider input enters conv4), then runs its own conv4/conv5 and head. Every stage is
an output (`stage1`, ..., `stageN`) and is supervised.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.backbone import create_timm
from posereg.nets.deconv_head import DeconvHead


class _Stage(nn.Module):
    """One stage: optional fusion of previous maps, conv4 + conv5 copies, heat-map head."""

    def __init__(self, fuse: nn.Module | None, layer3: nn.Module, layer4: nn.Module, head: DeconvHead):
        super().__init__()
        self.fuse = fuse
        self.layer3 = layer3
        self.layer4 = layer4
        self.head = head

    def forward(self, shared: torch.Tensor, prev_maps: torch.Tensor | None) -> torch.Tensor:
        """Raw maps of this stage."""
        x = shared
        if self.fuse is not None and prev_maps is not None:
            flat = prev_maps.flatten(1, prev_maps.dim() - 3)  # (B,J,[D,]H,W) -> (B,J*D,H,W)
            flat = F.interpolate(flat, size=shared.shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse(torch.cat([shared, flat], dim=1))
        return self.head(self.layer4(self.layer3(x)))


class MultiStageNet(nn.Module):
    """ResNet trunk up to conv3 shared by `num_stages` stages; returns every stage's output."""

    def __init__(
        self,
        backbone_name: str,
        num_joints: int,
        decoder: nn.Module,
        num_stages: int = 2,
        depth_bins: int | None = None,
        num_deconv: int = 3,
        width: int = 256,
        checkpoint: str | None = None,
        **timm_kwargs: Any,
    ):
        super().__init__()
        if num_stages < 1:
            raise ConfigError(f"method.stages={num_stages} must be >= 1")
        resnet = create_timm(backbone_name, checkpoint, num_classes=0, **timm_kwargs)
        needed = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")
        if not all(hasattr(resnet, n) for n in needed):
            raise ConfigError(
                f"multi-stage nets need a ResNet backbone (conv1..layer4); backbone.name={backbone_name!r} is not one"
            )
        self.trunk = nn.Sequential(*(getattr(resnet, n) for n in needed[:6]))
        c3 = _out_channels(resnet.layer2)
        c5 = _out_channels(resnet.layer4)
        maps_ch = num_joints * (depth_bins or 1)
        stages = []
        for s in range(num_stages):
            fuse = None
            if s > 0:
                fuse = nn.Sequential(
                    nn.Conv2d(c3 + maps_ch, c3, kernel_size=1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(inplace=True)
                )
            head = DeconvHead(c5, num_joints, depth_bins=depth_bins, num_deconv=num_deconv, width=width)
            stages.append(_Stage(fuse, copy.deepcopy(resnet.layer3), copy.deepcopy(resnet.layer4), head))
        self.stages = nn.ModuleList(stages)
        self.decoder = decoder
        self.output_names = [f"stage{s + 1}" for s in range(num_stages)]

    def forward(self, image: torch.Tensor, upto: int | None = None) -> list[dict[str, Any]]:
        """Outputs of stages 1..`upto` (default all), each with raw `maps` and decoded unit `coords`."""
        shared = self.trunk(image)
        outputs: list[dict[str, Any]] = []
        prev = None
        for s, stage in enumerate(self.stages[: upto or len(self.stages)]):
            prev = stage(shared, prev)
            outputs.append({"name": self.output_names[s], "coords": self.decoder(prev), "maps": prev})
        return outputs


def _out_channels(layer: nn.Module) -> int:
    """Output channels of a ResNet stage (its last conv's or BN's width)."""
    last = [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    return last.num_features
