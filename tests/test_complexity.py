"""Model complexity: ResNet-50's published numbers and the exact cost of one deconvolution layer."""

from __future__ import annotations

import pytest
import timm
import torch

from posereg.codecs import MapDecoder
from posereg.nets.complexity import Complexity, model_complexity
from posereg.nets.deconv_head import DeconvHead
from posereg.nets.hourglass import StackedHourglass


def test_resnet50_matches_published_numbers():
    net = timm.create_model("resnet50", pretrained=False)
    c = model_complexity(net, 224)
    assert c.params == 25_557_032
    assert c.gmacs == pytest.approx(4.1, rel=0.02)  # timm lists 4.11 GMACs
    assert c.summary() == "25.6 M params, 4.1 GMACs at 224×224"
    # MACs are per image: a batch of 2 reports the same number.
    assert model_complexity(net, (224, 224), batch=2).macs == c.macs


def test_third_deconv_costs_its_analytic_macs():
    j = 16

    def head_net(num_deconv: int) -> torch.nn.Module:
        torch.manual_seed(0)
        resnet = timm.create_model("resnet50", pretrained=False, num_classes=0, global_pool="")  # 8x8x2048 at 256
        return torch.nn.Sequential(resnet, DeconvHead(2048, j, num_deconv=num_deconv, width=256))

    two, three = model_complexity(head_net(2), 256), model_complexity(head_net(3), 256)
    # ConvTranspose2d(256->256, k4, s2) on 32x32: 256*256*16*32*32 = 64*64*256*256*4 ~ 1.07 G (Integral paper),
    # and the final 1x1 conv now runs on 64x64 instead of 32x32 cells.
    deconv = 256 * 256 * 4 * 4 * 32 * 32
    final = j * 256 * (64 * 64 - 32 * 32)
    assert three.macs - two.macs == deconv + final
    assert deconv == 64 * 64 * 256 * 256 * 4
    # Parameters differ by the third deconv and its BN (weight + bias).
    assert three.params - two.params == 256 * 256 * 16 + 2 * 256


def test_training_mode_restored_and_no_gradients():
    net = StackedHourglass(4, MapDecoder("integral"), num_stacks=2, width=16, num_levels=2)
    net.train()
    c = model_complexity(net, 64)
    assert isinstance(c, Complexity) and net.training and net.stacks[1].maps.training
    assert all(p.grad is None for p in net.parameters())
    assert c.params == sum(p.numel() for p in net.parameters())
    net.eval()
    model_complexity(net, 64)
    assert not net.training and not net.stem[1].training
    # A net taking `cut` is counted in full (cut=None), even when its forward defaults to an early exit.
    first_only = model_complexity(_CutByDefault(net, 0), 64)
    stack1 = model_complexity(StackedHourglass(4, MapDecoder("integral"), num_stacks=1, width=16, num_levels=2), 64)
    assert first_only.macs == c.macs > stack1.macs


class _CutByDefault(torch.nn.Module):
    """A net whose forward stops at output `default` unless told otherwise."""

    def __init__(self, net: torch.nn.Module, default: int):
        super().__init__()
        self.net, self.default = net, default

    def forward(self, image: torch.Tensor, cut: int | None = -1) -> list[dict]:
        return self.net(image, cut=self.default if cut == -1 else cut)
