"""Networks: timm backbone wrapper, deconv / regression heads, single- and multi-stage nets, the cut parser."""

from __future__ import annotations

from functools import partial

import pytest
import timm
import torch

from posereg.codecs import MapDecoder
from posereg.errors import ConfigError
from posereg.nets import (
    Backbone,
    DeconvHead,
    HeatmapNet,
    MultiStageNet,
    RegressionHead,
    RegressionNet,
    deconv_head,
    parse_cut,
)

torch.set_num_threads(1)


def test_backbone_levels_and_shapes():
    bb = Backbone("resnet18", out_indices=[2, 4])
    assert bb.channels == [128, 512] and bb.strides == [8, 32]
    feats = bb(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 128, 8, 8), (2, 512, 2, 2)]
    assert bb.out_channels == 512 and bb.out_stride == 32


def test_backbone_hrnet_incre_is_stride32_dropin():
    bb = Backbone("hrnet_w32", out_indices=[4], timm_kwargs={"feature_location": "incre"})
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


def _head(num_deconv: int = 2, width: int = 16, depth_bins: int = 64, heatmap_stride: int | None = None):
    return partial(deconv_head, num_deconv=num_deconv, heatmap_stride=heatmap_stride, width=width,
                   depth_bins=depth_bins)


def test_heatmap_net_outputs_in_unit_range_and_regression_net():
    net = HeatmapNet(Backbone("resnet18", out_indices=[4]), _head(), MapDecoder("integral"), num_joints=6, dims=2)
    out = net(torch.randn(2, 3, 64, 64))
    assert len(out) == 1 and out[0]["name"] == "out" and net.output_names == ["out"]
    assert out[0]["maps"].shape == (2, 6, 8, 8) and out[0]["coords"].shape == (2, 6, 2)
    c = out[0]["coords"]
    assert torch.all((c > 0) & (c < 1))
    vol = HeatmapNet(Backbone("resnet18"), _head(heatmap_stride=16, depth_bins=4), MapDecoder("integral"), 6, 3)
    assert vol(torch.randn(1, 3, 64, 64))[0]["maps"].shape == (1, 6, 4, 4, 4)  # stride 16 -> one deconv
    r1 = RegressionNet(Backbone("resnet18"), num_joints=6, dims=3)
    assert r1(torch.randn(2, 3, 64, 64))[0]["coords"].shape == (2, 6, 3) and not r1.produces_maps
    with pytest.raises(ConfigError, match="divisible"):
        RegressionNet(Backbone("resnet18"), num_joints=6, dims=2, input_size=100)
    with pytest.raises(ConfigError, match="heatmap_stride"):
        HeatmapNet(Backbone("resnet18"), _head(heatmap_stride=3), MapDecoder("integral"), 6, 2)


def test_multistage_every_stage_and_stage_dependency():
    torch.manual_seed(0)
    net = MultiStageNet(Backbone("resnet18"), _head(num_deconv=1, width=8, depth_bins=4), MapDecoder("integral"),
                        num_stages=3, num_joints=4, dims=3)
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
    with pytest.raises(ConfigError, match="ResNet"):
        MultiStageNet(Backbone("hrnet_w18_small"), _head(), MapDecoder("integral"), 2, 4, 2)


def test_multistage_cut_exits_early():
    torch.manual_seed(0)
    net = MultiStageNet(Backbone("resnet18"), _head(num_deconv=1, width=8), MapDecoder("integral"),
                        num_stages=3, num_joints=4, dims=2).eval()
    ran: list[int] = []
    for s, stage in enumerate(net.stages):
        stage.register_forward_hook(lambda *_, s=s: ran.append(s))
    x = torch.randn(1, 3, 64, 64)
    full = net(x)
    assert ran == [0, 1, 2]
    ran.clear()
    early = net(x, cut=1)
    assert ran == [0, 1] and [o["name"] for o in early] == ["stage1", "stage2"]  # stage 3 never ran
    assert torch.equal(early[1]["maps"], full[1]["maps"])


def test_parse_cut_grammar():
    names = ["p1l1", "p1l2", "p2l1", "p2l0"]
    aliases = {"1,1": "p1l1", "1,2": "p1l2", "2,1": "p2l1", "2,0": "p2l0"}
    assert parse_cut(None, names).index == 3 and parse_cut("last", names).evaluated == (3,)
    everything = parse_cut("all", names)
    assert everything.all and everything.evaluated == (0, 1, 2, 3) and everything.stop is None
    assert parse_cut(1, names).index == 1 and parse_cut("-1", names).index == 3
    assert parse_cut("p2l1", names).stop == 2
    assert parse_cut("1,2", names, aliases).index == 1
    assert parse_cut([2, 0], names, aliases).index == 3 and parse_cut("(2, 1)", names, aliases).index == 2
    assert parse_cut("2_1", names, aliases).index == 2
    for bad in ("p9l9", 4, "-5", "3,3", True):
        with pytest.raises(ConfigError, match="cut"):
            parse_cut(bad, names, aliases)
    with pytest.raises(ConfigError, match="measuring"):
        parse_cut("auto:200", names)


def test_backbone_checkpoint_with_a_prefix_loads_and_a_foreign_one_fails(tmp_path, capsys):
    ref = timm.create_model("resnet18", pretrained=False)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in ref.state_dict().items()}}, wrapped)
    bb = Backbone("resnet18", checkpoint=str(wrapped))
    assert torch.equal(bb.body.layer2[0].conv1.weight, ref.layer2[0].conv1.weight)
    assert "loaded 120 of 120 tensors" in capsys.readouterr().out  # the fc weight and bias are skipped
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.blocks.0.weight": torch.zeros(3)}, foreign)
    with pytest.raises(ConfigError, match="backbone.min_fraction"):
        Backbone("resnet18", checkpoint=str(foreign))


def test_hrnet_high_resolution_branch_gives_stride_4_maps_without_deconvolutions():
    """The lecture deck's HRNet row: backbone=hrnet_w32 with the stride-4 branch and heatmap_stride=4."""
    bb = Backbone("hrnet_w32", out_indices=[1], timm_kwargs={"feature_location": ""})
    net = HeatmapNet(bb, _head(heatmap_stride=4), MapDecoder("integral"), num_joints=16, dims=2)
    assert bb.out_stride == 4 and len(net.head.deconv) == 0
    assert net(torch.randn(1, 3, 64, 64))[0]["maps"].shape == (1, 16, 16, 16)
