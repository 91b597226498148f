"""DeepSkeleton stage 1 (Wan et al., arXiv 1711.10796, §3.2): a ResNet FCN that draws fg+bg skeleton maps.

The timm ResNet's res2..res5 features (strides 4..32) feed a top-down path: starting from res5 plus its
global average (the paper builds on pool5), each step upsamples x2 with a bilinear-initialised
transposed convolution, adds the next shallower level (res4, res3, res2) through a 1x1 lateral
convolution and refines the sum with a residual block. Every resolution branches to a residual block and
a 1x1 convolution to the 6 colour channels (fg RGB, bg RGB) as raw logits: intermediate supervision at
1/32, 1/16, 1/8 and 1/4 of the input (7², 14², 28², 56² at 224²), outputs `map7` ... `map56`.

Contract: stage 1 has no pose. Reading joints back from coloured sticks is not part of the paper and not
simple (a bone's two ends are indistinguishable in its colour), so every output carries `coords` of NaN
(B,J,dims): any pose metric on them is NaN, never a number that looks meaningful, and the stage-1 module
(`posereg.methods.deepskeleton.SkeletonMapModule`) evaluates the maps with map metrics instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.backbone import Backbone
from posereg.nets.contract import Output, PoseNet
from posereg.nets.integral_net import check_input_size

LEVELS = (1, 2, 3, 4)  # timm feature indices of res2..res5
STRIDES = (4, 8, 16, 32)
MAP_CHANNELS = 6  # foreground RGB + background RGB


def timm_backbone(name: str, checkpoint: str | None, timm_kwargs: Mapping[str, Any] | None,
                  out_indices: Sequence[int], pretrained: bool, **extra: Any) -> Backbone:
    """A Backbone from the `backbone` group's name/checkpoint/timm_kwargs/pretrained plus the net's own timm
    kwargs."""
    # the net, not the backbone group, decides the feature levels and input channels it needs
    return Backbone(str(name), out_indices=out_indices, checkpoint=checkpoint,
                    timm_kwargs={**dict(timm_kwargs or {}), **extra}, pretrained=pretrained)


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """k x k conv (no bias), BN, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut, then ReLU (the paper's "residual module")."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(x + body(x))."""
        return self.relu(x + self.body(x))


def bilinear_upsampler(channels: int) -> nn.ConvTranspose2d:
    """A depthwise x2 transposed convolution initialised to bilinear interpolation (FCN), learnable."""
    up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, groups=channels, bias=False)
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    with torch.no_grad():
        up.weight.copy_((f[:, None] * f[None, :]).expand(channels, 1, 4, 4))
    return up


class SkeletonFCN(PoseNet):
    """ResNet FCN -> fg+bg skeleton-map logits at strides 32, 16, 8, 4; outputs `map<side>` (see module doc)."""

    produces_maps = False

    def __init__(
        self,
        backbone: str,
        num_joints: int,
        dims: int,
        input_size: int | Sequence[int] | None = None,
        checkpoint: str | None = None,
        timm_kwargs: Mapping[str, Any] | None = None,
        width: int = 256,
        prior: float = 0.02,
        pretrained: bool = False,
    ):
        super().__init__()
        check_input_size(input_size, STRIDES[-1], "the skeleton-map FCN")
        self.backbone = timm_backbone(backbone, checkpoint, timm_kwargs, LEVELS, pretrained)
        if tuple(self.backbone.strides) != STRIDES:
            raise ConfigError(f"backbone.name={backbone}: the skeleton-map FCN needs res2..res5 features at strides "
                              f"{STRIDES}, this backbone gives {tuple(self.backbone.strides)} (use a ResNet)")
        self.num_joints, self.dims = int(num_joints), int(dims)
        w = int(width)
        chans = self.backbone.channels
        self.lateral = nn.ModuleList(conv_bn_relu(c, w, 1) for c in chans)  # res2..res5
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(chans[-1], w, 1), nn.ReLU(True))
        self.up = nn.ModuleList(bilinear_upsampler(w) for _ in chans[:-1])
        self.refine = nn.ModuleList(ResidualBlock(w) for _ in chans)  # deepest first
        self.heads = nn.ModuleList(nn.Sequential(ResidualBlock(w), nn.Conv2d(w, MAP_CHANNELS, 1)) for _ in chans)
        # start every map at a small colour value, the share of bone pixels, rather than sigmoid(0) = 0.5
        for head in self.heads:
            nn.init.constant_(head[-1].bias, math.log(prior / (1 - prior)))
        side = None if input_size is None else (input_size if isinstance(input_size, int) else int(input_size[0]))
        self.output_names = [f"map{side // s}" if side else f"stride{s}" for s in reversed(STRIDES)]

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """Outputs coarse to fine: {name, coords (NaN), skeleton_logits (B,6,h,w), features}."""
        feats = self.backbone(image)  # res2..res5
        stop = self.stop_at(cut)
        b = image.shape[0]
        coords = image.new_full((b, self.num_joints, self.dims), float("nan"))
        outputs: list[Output] = []
        x = self.lateral[-1](feats[-1]) + self.context(feats[-1])
        for k in range(stop):
            if k > 0:
                level = len(feats) - 1 - k
                x = self.up[level](x) + self.lateral[level](feats[level])
            x = self.refine[k](x)
            outputs.append({"name": self.output_names[k], "coords": coords,
                            "skeleton_logits": self.heads[k](x), "features": x})
        return outputs
