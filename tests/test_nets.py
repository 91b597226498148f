"""Networks: timm backbone wrapper, deconv / regression heads, single- and multi-stage nets."""

from __future__ import annotations

import pytest
import timm
import torch

from posereg.codecs import MapDecoder
from posereg.errors import ConfigError
from posereg.nets import Backbone, DeconvHead, IntegralNet, MultiStageNet, RegressionHead

torch.set_num_threads(1)


def test_backbone_levels_and_shapes():
    bb = Backbone("resnet18", out_indices=[2, 4])
    assert bb.channels == [128, 512] and bb.strides == [8, 32]
    feats = bb(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 128, 8, 8), (2, 512, 2, 2)]
    assert bb.out_channels == 512 and bb.out_stride == 32


def test_backbone_hrnet_incre_is_stride32_dropin():
    bb = Backbone("hrnet_w32", out_indices=[4], feature_location="incre")
    assert bb.out_channels == 1024 and bb.out_stride == 32


def test_backbone_checkpoint_loads_local_weights(tmp_path):
    torch.manual_seed(3)
    ref = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    bb = Backbone("resnet18", out_indices=[4], checkpoint=str(path))
    assert torch.equal(bb.body.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    with pytest.raises(ConfigError, match="backbone.checkpoint"):
        Backbone("resnet18", checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="not a timm model"):
        Backbone("resnet_does_not_exist")


@pytest.mark.parametrize("num_deconv", [0, 1, 2, 3])
def test_deconv_head_upsamples_by_two_per_layer(num_deconv):
    head = DeconvHead(64, num_joints=5, num_deconv=num_deconv, width=16)
    y = head(torch.randn(2, 64, 3, 4))
    assert y.shape == (2, 5, 3 * 2**num_deconv, 4 * 2**num_deconv)


def test_deconv_head_volume_and_init():
    head = DeconvHead(32, num_joints=3, depth_bins=8, num_deconv=2, width=64)
    y = head(torch.randn(2, 32, 2, 2))
    assert y.shape == (2, 3, 8, 8, 8)
    # N(0, 1e-3) as the authors: the sample std of 64*64*16 weights is within 5% of 1e-3.
    w = head.deconv[3].weight
    assert abs(w.std().item() - 1e-3) < 5e-5
    assert torch.all(head.final.bias == 0)


def test_regression_head_centre_offset():
    head = RegressionHead(8, num_joints=4, dims=3)
    torch.nn.init.zeros_(head.fc.weight)
    torch.nn.init.zeros_(head.fc.bias)
    y = head(torch.randn(2, 8, 3, 3))
    assert y.shape == (2, 4, 3) and torch.all(y == 0.5)


def test_integral_net_outputs_in_unit_range():
    net = IntegralNet(Backbone("resnet18", out_indices=[4]), DeconvHead(512, 6, num_deconv=2, width=16),
                      MapDecoder("integral"))
    out = net(torch.randn(2, 3, 64, 64))
    assert len(out) == 1 and out[0]["name"] == "out"
    assert out[0]["maps"].shape == (2, 6, 8, 8) and out[0]["coords"].shape == (2, 6, 2)
    c = out[0]["coords"]
    assert torch.all((c > 0) & (c < 1))


def test_multistage_every_stage_and_stage_dependency():
    torch.manual_seed(0)
    net = MultiStageNet("resnet18", num_joints=4, decoder=MapDecoder("integral"), num_stages=3,
                        depth_bins=4, num_deconv=1, width=8)
    x = torch.randn(2, 3, 64, 64)
    net.eval()
    outs = net(x)
    assert [o["name"] for o in outs] == ["stage1", "stage2", "stage3"]
    assert all(o["maps"].shape == (2, 4, 4, 4, 4) and o["coords"].shape == (2, 4, 3) for o in outs)
    # Stage 2 reads stage 1's maps: changing stage 1's head changes stage 2 but not stage 1's own trunk input.
    with torch.no_grad():
        net.stages[0].head.final.bias.add_(1.0 + torch.arange(16.0))
        outs2 = net(x)
    assert not torch.allclose(outs2[1]["maps"], outs[1]["maps"])
    assert len(net(x, upto=2)) == 2
    with pytest.raises(ConfigError, match="ResNet"):
        MultiStageNet("hrnet_w18_small", num_joints=4, decoder=MapDecoder("integral"))
