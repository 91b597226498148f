"""Depthwise-separable convolutions and pre-activation residual units (bias-free, SSP-Net style)."""

from __future__ import annotations

import torch
from torch import nn


class SeparableConv2d(nn.Module):
    """Depthwise k x k convolution followed by a pointwise 1 x 1 convolution."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5, stride: int = 1, bias: bool = False):
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_ch, in_ch, kernel_size, stride=stride, padding=kernel_size // 2, groups=in_ch, bias=False
        )
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the depthwise then the pointwise convolution."""
        return self.pointwise(self.depthwise(x))


def _shortcut(in_ch: int, out_ch: int) -> nn.Module:
    """Identity when widths match, else a bias-free 1 x 1 convolution."""
    if in_ch == out_ch:
        return nn.Identity()
    return nn.Conv2d(in_ch, out_ch, 1, bias=False)


class SeparableResidualUnit(nn.Module):
    """Pre-activation residual unit: BN -> ReLU -> separable conv, plus a (projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_ch)
        self.act = nn.ReLU()
        self.conv = SeparableConv2d(in_ch, out_ch, kernel_size)
        self.project = in_ch != out_ch
        self.shortcut = _shortcut(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum of the activated separable branch and the shortcut."""
        a = self.act(self.bn(x))
        # A projecting shortcut sees the activated input (pre-activation ResNet, as in deephar).
        return self.shortcut(a if self.project else x) + self.conv(a)


class ResidualBottleneck(nn.Module):
    """Pre-activation 'normal' residual unit of the entry flow: 1x1 (mid) -> 3x3 (out) plus shortcut."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int, kernel_size: int = 3):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
        self.act = nn.ReLU()
        self.project = in_ch != out_ch
        self.shortcut = _shortcut(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum of the bottleneck branch and the shortcut."""
        a = self.act(self.bn1(x))
        y = self.conv2(self.act(self.bn2(self.conv1(a))))
        return self.shortcut(a if self.project else x) + y
