"""Deconvolution heat-map head of Sun et al. / Xiao et al.: n x [deconv 4x4 s2, BN, ReLU], 1x1 conv."""

from __future__ import annotations

import torch
from torch import nn


class DeconvHead(nn.Module):
    """Upsample features with transposed convs, then a 1x1 conv to J maps (2D) or J*D maps (3D volumes)."""

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        depth_bins: int | None = None,
        num_deconv: int = 3,
        width: int = 256,
    ):
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
