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
    assert c.summary() == "25.6 M params, 4.09 GMACs at 224×224"
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
    # A posereg net is counted up to its cut (the deployed early exit); None counts every output.
    first_only = model_complexity(net, 64, cut=0)
    stack1 = model_complexity(StackedHourglass(4, MapDecoder("integral"), num_stacks=1, width=16, num_levels=2), 64)
    assert c.macs > first_only.macs == stack1.macs and first_only.params == c.params


def test_integral_table2_settings_save_what_the_paper_states():
    """Sun et al. Table 2 text: (a)->(b) saves 1.1 G (15 %), (c)->(d) 0.3 G (17 %), (b)->(d) 4.7 G (76 %)."""
    from functools import partial

    from posereg.nets import Backbone, HeatmapNet, deconv_head

    def gmacs(size: int, num_deconv: int) -> float:
        head = partial(deconv_head, num_deconv=num_deconv, heatmap_stride=None, width=256, depth_bins=64)
        net = HeatmapNet(Backbone("resnet50"), head, MapDecoder("integral"), num_joints=16, dims=2)
        return model_complexity(net, size).gmacs

    a, b, c, d = gmacs(256, 3), gmacs(256, 2), gmacs(128, 3), gmacs(128, 2)
    assert (round(a, 2), round(b, 2), round(c, 2), round(d, 2)) == (7.23, 6.15, 1.81, 1.54)
    for (big, small), (saved, relative) in {(a, b): (1.1, 15), (c, d): (0.3, 17), (b, d): (4.7, 76)}.items():
        assert big - small == pytest.approx(saved, abs=0.1)  # the paper rounds to 0.1 G
        # the paper's percentages come from its rounded values (0.3 G of 1.8 G = 17 % where we count 0.27 G, 15 %)
        assert 100 * (big - small) / big == pytest.approx(relative, abs=2.5)
