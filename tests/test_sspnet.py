"""SSP-Net: Table 5 layout, real early exit at a cut, training signal per output, regression heads."""

from __future__ import annotations

import math

import pytest
import torch

from posereg.errors import ConfigError
from posereg.nets.cut import parse_cut
from posereg.nets.root_depth import RootDepthMLP, box_features, root_depth_loss
from posereg.nets.sspnet import EntryFlow, SSPNet, output_names, regress
from posereg.ops import confidence_from_prob, depth_attention, spatial_softmax

# Table 5 of the paper: which (level, pyramid) cells have an output ("-" cells are absent).
TABLE5 = {
    0: [2, 4, 6, 8],
    1: [1, 2, 3, 4, 5, 6, 7, 8],
    2: [1, 2, 3, 4, 5, 6, 7, 8],
    3: [1, 3, 5, 7],
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one thread avoids OpenMP contention on the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_net(
    k: int = 4, levels: int = 3, growth: int = 16, joints: int = 5, dims: int = 3, stem: int = 16
) -> SSPNet:
    torch.manual_seed(0)
    return SSPNet(joints, dims=dims, growth=growth, num_pyramids=k, num_levels=levels, stem_channels=stem)


def test_output_names_match_table5_cells_in_execution_order():
    names = output_names(8, 3)
    assert len(names) == 24
    cells = {(int(n[1]), int(n[3])) for n in names}
    assert cells == {(k, lvl) for lvl, ks in TABLE5.items() for k in ks}
    assert names[:6] == ["p1l1", "p1l2", "p1l3", "p2l2", "p2l1", "p2l0"]
    assert names[-1] == "p8l0"


def test_shapes_per_pyramid_and_level():
    net = small_net().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = net(x)
    assert [o["name"] for o in outs] == output_names(4, 3)
    for o, f in zip(outs, [o["features"] for o in outs], strict=True):
        level = int(o["name"][3])
        side = 64 // 8 // 2**level
        assert o["coords"].shape == (2, 5, 3)
        assert o["maps"].shape == (2, 5, side, side)
        assert o["conf_logits"].shape == (2, 5)
        assert f.shape == (2, 3 * 16 + level * 16, side, side)
        assert torch.isfinite(o["coords"]).all()
        assert ((o["coords"] >= 0) & (o["coords"] <= 1)).all()


def test_entry_flow_of_table1_gives_32x32x384_at_256():
    entry = EntryFlow(growth=128).eval()
    with torch.no_grad():
        y = entry(torch.randn(1, 3, 256, 256))
    assert y.shape == (1, 384, 32, 32)
    assert all(m.bias is None for m in entry.modules() if isinstance(m, torch.nn.Conv2d))


def test_2d_variant_has_no_depth_branch():
    net = small_net(k=2, levels=2, dims=2).eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 64, 64))
    assert all(o["coords"].shape == (1, 5, 2) for o in outs)
    assert not any(n.endswith(("reinject_depth", ".depth")) for n, _ in net.named_modules())


def _record_executed(net: SSPNet) -> tuple[set, list]:
    seen: set = set()
    handles = [m.register_forward_hook(lambda mod, i, o: seen.add(id(mod))) for m in net.modules()]
    return seen, handles


@pytest.mark.parametrize("cut", ["p1l2", "p2l1", (3, 1), "4,2", -1])
def test_cut_runs_only_the_modules_before_it_and_matches_full_output(cut):
    net = small_net().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = net(x)
        seen, handles = _record_executed(net)
        idx = parse_cut(cut, net.output_names, net.cut_aliases).index
        part = net(x, cut=idx)
    for h in handles:
        h.remove()
    names = net.output_names
    assert len(part) == idx + 1
    assert part[-1]["name"] == names[idx]
    tops = [net.entry] + [m for n in names[: idx + 1] for m in (net.units[n], net.blocks[n])]
    expected = {id(m) for top in tops for m in top.modules()}
    leaves = {id(m) for m in net.modules() if not list(m.children())}
    assert seen & leaves == expected & leaves
    if idx < len(names) - 1:
        later = net.blocks[names[idx + 1]]
        assert id(later) not in seen
        assert len(seen & leaves) < len(leaves)
    for a, b in zip(part, full[: idx + 1], strict=True):
        assert a["name"] == b["name"]
        assert torch.allclose(a["coords"], b["coords"], atol=1e-6)
        assert torch.allclose(a["conf_logits"], b["conf_logits"], atol=1e-5)


def test_cut_aliases_name_every_table5_cell():
    net = SSPNet(4, growth=8, num_pyramids=8, num_levels=3, stem_channels=8)
    names = output_names(8, 3)
    assert net.output_names == names
    assert parse_cut("p3l2", names, net.cut_aliases).index == names.index("p3l2")
    assert parse_cut("3,2", names, net.cut_aliases).index == names.index("p3l2")
    assert parse_cut([8, 0], names, net.cut_aliases).index == 23
    for bad in ["p1l0", "p9l1", "fast", 24, (1, 2, 3), True]:
        with pytest.raises(ConfigError):
            parse_cut(bad, names, net.cut_aliases)


def test_input_size_must_fit_the_levels():
    with pytest.raises(ConfigError, match="input_size"):
        SSPNet(5, growth=16, num_pyramids=2, num_levels=3, input_size=96)
    with pytest.raises(ConfigError):
        SSPNet(5, growth=15)


def _elastic(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    err = (pred - target) * w
    return (err.abs() + err.pow(2)).sum() / w.sum()


def test_optimization_steps_reduce_every_outputs_loss():
    net = small_net(k=2, levels=2, growth=8, stem=8)
    torch.manual_seed(1)
    x = torch.randn(4, 3, 64, 64)
    target = torch.rand(4, 5, 3) * 0.6 + 0.2
    w = torch.ones(4, 5, 3)
    w[:2, :, 2] = 0.0  # two 2D-only samples, as in mixed batches
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)

    def losses() -> list[torch.Tensor]:
        return [_elastic(o["coords"], target, w) for o in net(x)]

    net.train()
    with torch.no_grad():
        before = [v.item() for v in losses()]
    for _ in range(10):
        opt.zero_grad()
        torch.stack(losses()).sum().backward()
        opt.step()
    with torch.no_grad():
        after = [v.item() for v in losses()]
    assert len(before) == 4
    assert all(a < 0.8 * b for a, b in zip(after, before, strict=True)), (before, after)


def test_regression_heads_match_ops_on_hand_made_maps():
    # Joint 0: a 2x2 block of probability 0.25 each at rows 1-2, cols 2-3 of a 4x4 map (others ~0).
    # Joint 1: a uniform map.
    prob = torch.full((1, 2, 4, 4), 1e-9)
    prob[0, 0, 1:3, 2:4] = 0.25
    prob[0, 1] = 1.0 / 16
    h = torch.log(prob)
    depth = torch.zeros(1, 2, 4, 4)
    depth[0, 0, 1, 2] = math.log(3.0)  # sigmoid = 0.75
    depth[0, 1, 0, 0] = 10.0
    out = regress(h, depth, ramp="center")
    xyz, conf = out["coords"], torch.sigmoid(out["conf_logits"])
    # Centre ramp: columns 2,3 -> (2.5 + 3.5)/2/4 = 0.75, rows 1,2 -> 0.5.
    assert torch.allclose(xyz[0, 0, :2], torch.tensor([0.75, 0.5]), atol=1e-6)
    assert torch.allclose(xyz[0, 1, :2], torch.tensor([0.5, 0.5]), atol=1e-6)
    # z = 0.25 * (0.75 + 0.5 + 0.5 + 0.5) for joint 0; (0.5 * 15 + sigmoid(10)) / 16 for joint 1.
    assert xyz[0, 0, 2].item() == pytest.approx(0.5625, abs=1e-6)
    assert xyz[0, 1, 2].item() == pytest.approx((7.5 + 1 / (1 + math.exp(-10))) / 16, abs=1e-6)
    # Confidence: the 2x2 block holds all mass -> 1; uniform 4x4 -> 4/16.
    assert conf[0, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert conf[0, 1].item() == pytest.approx(0.25, abs=1e-6)
    p = spatial_softmax(h)
    assert torch.allclose(xyz[..., 2], depth_attention(p, depth), atol=1e-7)
    assert torch.allclose(conf, confidence_from_prob(p), atol=1e-5)


def test_root_depth_mlp_starts_at_pinhole_prior_and_learns():
    torch.manual_seed(0)
    mlp = RootDepthMLP(feature_channels=8, hidden=(16, 16, 32))
    feats = torch.randn(4, 8, 2, 2)
    cam = torch.tensor([[640.0, 640.0, 32.0, 32.0]] * 4)
    cam[1, :2] = 320.0
    box = box_features(cam, (64, 64))
    assert torch.allclose(box[0], torch.tensor([math.log(10.0), math.log(10.0), 0.0, 0.0]))
    z = mlp(feats, cam, (64, 64))
    assert torch.allclose(z, torch.tensor([20000.0, 10000.0, 20000.0, 20000.0]))
    target = torch.tensor([5000.0, 4000.0, 6000.0, 5500.0])
    valid = torch.tensor([1.0, 1.0, 1.0, 0.0])
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    first = root_depth_loss(mlp(feats, cam, (64, 64)), target, valid).item()
    assert first == pytest.approx((15 + 6 + 14) / 3, rel=1e-5)
    for _ in range(100):
        opt.zero_grad()
        root_depth_loss(mlp(feats, cam, (64, 64)), target, valid).backward()
        opt.step()
    assert root_depth_loss(mlp(feats, cam, (64, 64)), target, valid).item() < 0.1 * first


def test_conf_loss_targets_inside_labelled_joints():
    from posereg.losses.terms import conf_loss

    coords = torch.tensor([[[0.5, 0.5], [1.2, 0.5], [0.0, 0.0], [0.3, 0.3]]])
    weights = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    logits = torch.tensor([[0.0, 2.0, 5.0, -1.0]])
    # joint 0: inside, target 1 -> log 2; joint 1: outside, target 0 -> softplus(2);
    # joints 2, 3: unlabelled and inside the crop -> left out.
    expected = math.log(2.0) + math.log1p(math.exp(2.0))
    assert conf_loss(logits, coords, weights).item() == pytest.approx(expected, rel=1e-6)


def test_select_cut_for_fps_picks_latest_fast_enough_output():
    from posereg.bench.sspnet import select_cut_for_fps

    names = ["p1l1", "p1l2", "p2l1", "p2l0"]
    fps = {"p1l1": 300.0, "p1l2": 250.0, "p2l1": 140.0, "p2l0": 120.0}
    assert select_cut_for_fps(fps, 200.0, names) == "p1l2"
    assert select_cut_for_fps(fps, 100.0, names) == "p2l0"
    with pytest.raises(ConfigError, match="auto:400"):
        select_cut_for_fps(fps, 400.0, names)


def test_bench_reports_every_cut_relative_to_the_full_network(tmp_path):
    from posereg.bench.sspnet import run_sspnet_bench

    rep = run_sspnet_bench(input_size=64, growth=8, num_pyramids=2, num_levels=2, num_joints=4,
                           repeats=1, warmup=0, out_dir=tmp_path, tag="t")
    assert [r["cut"] for r in rep["cuts"]] == output_names(2, 2)
    assert [r["map_size"] for r in rep["cuts"]] == [4, 2, 4, 8]
    assert rep["cuts"][-1]["batch"]["1"]["speedup"] == 1.0
    assert (tmp_path / "sspnet_t.json").exists() and "| p2l0 | 8²" in (tmp_path / "sspnet_t.md").read_text()


def test_generic_module_builds_sspnet_and_exits_early(make_cfg):
    from posereg.data.datamodule import DataInfo
    from posereg.methods import build_module

    cfg = make_cfg("data=synth_mixed", "method=sspnet", "method.net.growth=8", "method.net.num_pyramids=2",
                   "method.net.num_levels=2", "method.net.stem_channels=8", "cut='2,1'")
    info = DataInfo("h36m17", 64, True, True, 2000.0, ("synth3d",))
    module = build_module(cfg, info).eval()
    assert isinstance(module.net, SSPNet) and module.net.dims == 3
    assert module.output_names == output_names(2, 2)
    assert module.cut_index == 2 and module.cut.stop == 2
    assert list(module.loss.terms) == ["coord", "conf"]
    with torch.no_grad():
        outs = module.eval_forward(torch.randn(2, 3, 64, 64))
    assert [o["name"] for o in outs] == ["p1l1", "p1l2", "p2l1"]
    with pytest.raises(ConfigError, match="p3l1"):
        build_module(make_cfg("method=sspnet", "method.net.num_pyramids=2", "cut=p3l1"), info)


def test_bench_times_the_cuts_asked_for_and_the_full_network(tmp_path):
    from posereg.bench.sspnet import run_sspnet_bench

    small = {"input_size": 64, "growth": 8, "num_pyramids": 2, "num_levels": 2, "num_joints": 4, "repeats": 1,
             "warmup": 0, "out_dir": None}
    rep = run_sspnet_bench(cuts=["p1l2"], **small)
    assert [r["cut"] for r in rep["cuts"]] == ["p1l2", "p2l0"]  # the full network is always timed
    assert [r["map_size"] for r in rep["cuts"]] == [2, 8] and rep["cuts"][-1]["batch"]["1"]["speedup"] == 1.0
    with pytest.raises(ConfigError, match="p9l1"):
        run_sspnet_bench(cuts=["p9l1"], **small)
    with pytest.raises(ConfigError, match="cuda_graphs"):
        run_sspnet_bench(cuda_graphs=True, **small)
