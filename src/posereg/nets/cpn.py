"""Cascaded Pyramid Network (Chen et al., CVPR'18): a GlobalNet feature pyramid and a RefineNet over a backbone.

GlobalNet: the backbone's levels (timm features_only; C2..C5 of a ResNet, strides 4..32) each get a lateral 1x1
conv (+ BN, ReLU) to `width` channels; from the coarsest level down, the level above is upsampled (bilinear) to
this level's size, passed through a 1x1 conv ("a 1x1 convolution before each element-wise sum", unlike FPN)
and added. Every pyramid level predicts J heat maps (1x1 conv + BN + ReLU, then a 3x3 conv) that are upsampled
to the finest level's resolution (stride 4 on a ResNet), as the authors' tf-cpn does: outputs `global_c5` ...
`global_c2` (C_k has stride 2^k).
RefineNet: pyramid level C_k passes through k - 2 bottleneck blocks (0 at the finest level, 3 at C5: "more
bottleneck blocks into deeper layers"), is upsampled to the finest resolution, the levels are concatenated, and
one more bottleneck and a 3x3 conv give the `refine` maps.

Every output is supervised. Two differences from the authors' code: their GlobalNet targets are Gaussians that
differ per level, posereg's loss term draws one Gaussian for every output; online hard keypoint mining (their
RefineNet loss keeps the 8 hardest of 17 joints) is the heat-map terms' `top_k` option, which
conf/method/net/cpn.yaml sets for `refine` through this network's `ohkm` setting (checked here).
With 3D data every map conv predicts J x D channels, read as (B,J,D,H,W) volumes as the deconvolution head does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posereg.errors import ConfigError, require_int
from posereg.nets.backbone import Backbone
from posereg.nets.contract import Output, PoseNet
from posereg.nets.integral_net import check_input_size


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """1x1 conv, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 (mid), 3x3 (mid), 1x1 (out), BN after each, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = (nn.Identity() if cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,cin,h,w) -> (B,cout,h,w)."""
        return F.relu(self.body(x) + self.shortcut(x))


class MapConv(nn.Module):
    """A 3x3 conv to J maps (J x D channels, viewed as (B,J,D,H,W), for volumes), started near zero."""

    def __init__(self, cin: int, num_joints: int, depth_bins: int | None):
        super().__init__()
        self.num_joints, self.depth_bins = num_joints, depth_bins
        self.conv = nn.Conv2d(cin, num_joints * (depth_bins or 1), 3, padding=1)
        nn.init.normal_(self.conv.weight, std=1e-3)  # as the deconvolution head: near-flat maps at the start
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw maps (B,J,H,W) or (B,J,D,H,W)."""
        y = self.conv(x)
        if self.depth_bins is None:
            return y
        return y.view(y.shape[0], self.num_joints, self.depth_bins, *y.shape[-2:])


def _resize(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of maps or volumes (B,J,[D,]h,w) to spatial `size` (H, W)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    flat = maps.flatten(1, maps.dim() - 3)
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
    return out.view(*maps.shape[:-2], *out.shape[-2:])


class CascadedPyramidNet(PoseNet):
    """GlobalNet (one output per pyramid level, coarsest first) + RefineNet (`refine`); see the module docstring."""

    def __init__(
        self,
        backbone: Backbone,
        decoder: nn.Module,
        width: int,
        depth_bins: int,
        ohkm: Mapping[str, Any] | None,
        num_joints: int,
        dims: int,
        input_size: int | Sequence[int] | None = None,
    ):
        super().__init__()
        if len(backbone.channels) < 2:
            raise ConfigError("method.net.backbone.out_indices: CPN needs at least two feature levels (C2..C5: "
                              "[1, 2, 3, 4])")
        check_input_size(input_size, backbone.out_stride, "CPN")
        width = require_int(width, "method.net.width", 2)
        bins = require_int(depth_bins, "method.head.depth_bins", 1) if dims == 3 else None
        self.backbone = backbone
        self.decoder = decoder
        # coarsest level first: the order the top-down pathway computes them
        levels = list(range(len(backbone.channels)))[::-1]
        self.levels = levels
        self.lateral = nn.ModuleList(_conv_bn_relu(backbone.channels[i], width) for i in levels)
        self.merge = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in levels[1:])
        self.global_heads = nn.ModuleList(nn.Sequential(_conv_bn_relu(width, width), MapConv(width, num_joints, bins))
                                          for _ in levels)
        finest = min(backbone.strides)
        depth = {i: round(math.log2(backbone.strides[i] / finest)) for i in levels}  # bottlenecks per level
        self.refine_blocks = nn.ModuleList(
            nn.Sequential(*(Bottleneck(width, width // 2, width) for _ in range(depth[i]))) for i in levels)
        self.refine_final = Bottleneck(width * len(levels), width // 2, width)
        self.refine_head = MapConv(width, num_joints, bins)
        names = [f"global_c{round(math.log2(backbone.strides[i]))}" for i in levels]
        self.output_names = [*names, "refine"]
        ohkm = ohkm or {}
        for name in ohkm.get("outputs") or []:
            if name not in self.output_names:
                raise ConfigError(f"method.net.ohkm.outputs: {name!r} is not an output of CPN "
                                  f"({', '.join(self.output_names)})")
        k = ohkm.get("top_k")
        if k is not None and require_int(k, "method.net.ohkm.top_k", 1) > num_joints:
            raise ConfigError(f"method.net.ohkm.top_k={k}: more than the {num_joints} joints")

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """GlobalNet outputs (coarsest level first), then `refine`; stops after output `cut`."""
        n = self.stop_at(cut)
        feats = self.backbone(image)
        size = feats[min(range(len(feats)), key=lambda i: self.backbone.strides[i])].shape[-2:]
        outputs: list[Output] = []
        pyramid: list[torch.Tensor] = []
        for k, i in enumerate(self.levels[:n]):
            level = self.lateral[k](feats[i])
            if pyramid:
                up = F.interpolate(pyramid[-1], size=level.shape[-2:], mode="bilinear", align_corners=False)
                level = level + self.merge[k - 1](up)
            pyramid.append(level)
            maps = _resize(self.global_heads[k](level), size)
            outputs.append({"name": self.output_names[k], "coords": self.decoder(maps), "maps": maps,
                            "features": level})
        if n <= len(self.levels):
            return outputs
        refined = [F.interpolate(block(level), size=size, mode="bilinear", align_corners=False)
                   for block, level in zip(self.refine_blocks, pyramid, strict=True)]
        feat = self.refine_final(torch.cat(refined, dim=1))
        maps = self.refine_head(feat)
        outputs.append({"name": "refine", "coords": self.decoder(maps), "maps": maps, "features": feat})
        return outputs
