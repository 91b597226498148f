"""Multi-stage ResNet (MS-H1 / MS-I1, Sun et al. 2018 §5): shared conv3 trunk, per-stage conv4/conv5 + head.

Stage 1 runs its conv4/conv5 copy on the shared conv3 (`layer2`) features. Stage s > 1 concatenates
those features with stage s-1's raw maps (volumes flattened to J*D channels), resized to the conv3
resolution, and fuses them back to the conv3 width with a 1x1 conv + BN + ReLU (our choice: the paper
does not say how the wider input enters conv4), then runs its own conv4/conv5 and head. Every stage is
an output (`stage1`, ..., `stageN`) and is supervised.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.backbone import Backbone
from posereg.nets.contract import Output, PoseNet
from posereg.nets.integral_net import HeadFactory, check_input_size

RESNET_STAGES = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")


class _Stage(nn.Module):
    """One stage: optional fusion of previous maps, conv4 + conv5 copies, heat-map head."""

    def __init__(self, fuse: nn.Module | None, layer3: nn.Module, layer4: nn.Module, head: nn.Module):
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


class MultiStageNet(PoseNet):
    """ResNet trunk up to conv3 shared by `num_stages` stages; every stage is an output (`stage1`, ...)."""

    def __init__(
        self,
        backbone: Backbone,
        head: HeadFactory,
        decoder: nn.Module,
        num_stages: int,
        num_joints: int,
        dims: int,
        input_size: int | Sequence[int] | None = None,
    ):
        super().__init__()
        if num_stages < 1:
            raise ConfigError(f"method.stages={num_stages} must be >= 1")
        body = backbone.body
        if not all(hasattr(body, n) for n in RESNET_STAGES):
            raise ConfigError(
                f"multi-stage nets need a ResNet backbone (conv1..layer4); backbone.name={backbone.name!r} is not one"
            )
        check_input_size(input_size, backbone.out_stride, "the multi-stage net")
        self.trunk = nn.Sequential(*(getattr(body, n) for n in RESNET_STAGES[:6]))
        c3 = _out_channels(body.layer2)
        c5 = _out_channels(body.layer4)
        stages = []
        for s in range(num_stages):
            stage_head = head(in_channels=c5, in_stride=backbone.out_stride, num_joints=num_joints, dims=dims)
            fuse = None
            if s > 0:
                maps_ch = stage_head.final.out_channels
                fuse = nn.Sequential(
                    nn.Conv2d(c3 + maps_ch, c3, kernel_size=1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(inplace=True)
                )
            stages.append(_Stage(fuse, copy.deepcopy(body.layer3), copy.deepcopy(body.layer4), stage_head))
        self.stages = nn.ModuleList(stages)
        self.decoder = decoder
        self.output_names = [f"stage{s + 1}" for s in range(num_stages)]

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """Outputs of stages 1..cut+1 (all when None), each with raw `maps` and decoded unit `coords`."""
        shared = self.trunk(image)
        outputs: list[Output] = []
        prev = None
        for s, stage in enumerate(self.stages[: self.stop_at(cut)]):
            prev = stage(shared, prev)
            outputs.append({"name": self.output_names[s], "coords": self.decoder(prev), "maps": prev})
        return outputs


def _out_channels(layer: nn.Module) -> int:
    """Output channels of a ResNet stage (its last conv's or BN's width)."""
    last = [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    return last.num_features
