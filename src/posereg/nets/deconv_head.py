"""Deconvolution heat-map head of Sun et al. / Xiao et al.: n x [deconv 4x4 s2, BN, ReLU], 1x1 conv."""

from __future__ import annotations

import math

import torch
from torch import nn

from posereg.errors import ConfigError, require_int


class DeconvHead(nn.Module):
    """Upsample features with transposed convs, then a 1x1 conv to J maps (2D) or J*D maps (3D volumes)."""

    def __init__(self, in_channels: int, num_joints: int, num_deconv: int, width: int, depth_bins: int | None = None):
        super().__init__()
        self.num_joints = num_joints
        self.depth_bins = depth_bins
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(ch, width, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            ch = width
        self.deconv = nn.Sequential(*layers)
        self.final = nn.Conv2d(ch, num_joints * (depth_bins or 1), kernel_size=1)
        self.upsample = 2**num_deconv
        self._init_weights()

    def _init_weights(self) -> None:
        """N(0, 1e-3) for (de)convs, BN weight 1 / bias 0, as the authors' `deconv_head.py`."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(m.weight, std=1e-3)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw maps (B,J,H,W), or (B,J,D,H,W) when `depth_bins` is set."""
        y = self.final(self.deconv(x))
        if self.depth_bins is None:
            return y
        b, _, h, w = y.shape
        return y.view(b, self.num_joints, self.depth_bins, h, w)


def deconv_count(num_deconv: int, heatmap_stride: int | None, in_stride: int) -> int:
    """x2 deconvolutions to use: `heatmap_stride` (4, 8, ...) reached from `in_stride` when set, else `num_deconv`."""
    if heatmap_stride is None:
        return int(num_deconv)
    n = math.log2(in_stride / int(heatmap_stride))
    if n < 0 or n != int(n):
        raise ConfigError(f"method.head.heatmap_stride={heatmap_stride} cannot be reached from the backbone "
                          f"stride {in_stride} by x2 deconvolutions")
    return int(n)


def deconv_head(
    in_channels: int,
    in_stride: int,
    num_joints: int,
    dims: int,
    num_deconv: int,
    heatmap_stride: int | None,
    width: int,
    depth_bins: int,
) -> DeconvHead:
    """The `method.head` factory: a DeconvHead for features of `in_stride`, volumes of `depth_bins` in 3D."""
    require_int(width, "method.head.width", 1)
    bins = require_int(depth_bins, "method.head.depth_bins", 1) if dims == 3 else None
    n = deconv_count(require_int(num_deconv, "method.head.num_deconv", 0), heatmap_stride, in_stride)
    return DeconvHead(in_channels, num_joints, n, width, depth_bins=bins)
