"""CPN: the network contract (outputs, early exit, volumes), its exact RefineNet cost, OHKM, a tiny training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import posereg
from conftest import compose_config
from posereg.codecs import CoordTargets, HeatmapTargets, MapDecoder
from posereg.data.datamodule import data_info
from posereg.errors import ConfigError
from posereg.losses import GaussianHeatmapMSE
from posereg.losses.terms import hardest_joints, heatmap_loss, heatmap_loss_per_joint
from posereg.methods import build_module
from posereg.nets import Backbone
from posereg.nets.complexity import model_complexity
from posereg.nets.cpn import CascadedPyramidNet
from posereg.recipes.train import train_task

NAMES = ["global_c5", "global_c4", "global_c3", "global_c2", "refine"]
SMALL = ["method/net=cpn", "backbone.name=resnet10t", "method.net.width=32", "data.input_size=64"]


def _cpn(width: int = 32, dims: int = 2) -> CascadedPyramidNet:
    torch.manual_seed(0)
    return CascadedPyramidNet(Backbone("resnet10t", out_indices=[1, 2, 3, 4]), MapDecoder("integral"), width=width,
                              depth_bins=4, ohkm=None, num_joints=16, dims=dims, input_size=64)


def test_outputs_follow_the_contract_and_stop_at_the_cut() -> None:
    net = _cpn().eval()
    assert net.output_names == NAMES
    assert [len(block) for block in net.refine_blocks] == [3, 2, 1, 0]  # more bottlenecks on deeper levels
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = net(x)
    assert [o["name"] for o in outputs] == NAMES
    for o in outputs:  # every level's maps at the finest level's resolution (stride 4)
        assert o["maps"].shape == (2, 16, 16, 16) and o["coords"].shape == (2, 16, 2)
        assert torch.equal(o["coords"], net.decoder(o["maps"]))
    calls = []
    net.refine_final.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        early = net(x, cut=3)
    assert [o["name"] for o in early] == NAMES[:4] and not calls  # RefineNet never ran
    assert all(torch.equal(a["maps"], b["maps"]) for a, b in zip(early, outputs, strict=False))
    with torch.no_grad():
        assert len(net(x, cut=0)) == 1 and len(net(x)) == 5 and calls == [1]


def test_volumes_for_3d_data() -> None:
    with torch.no_grad():
        outputs = _cpn(dims=3).eval()(torch.randn(1, 3, 64, 64))
    assert all(o["maps"].shape == (1, 16, 4, 16, 16) and o["coords"].shape == (1, 16, 3) for o in outputs)


def test_refinenet_costs_its_analytic_macs() -> None:
    w, j = 32, 16
    net = _cpn(width=w)
    full, global_only = model_complexity(net, 64), model_complexity(net, 64, cut=3)
    bottleneck = w * w // 2 + 9 * (w // 2) ** 2 + w // 2 * w  # per cell: 1x1 in, 3x3, 1x1 out
    final = 4 * w * w // 2 + 9 * (w // 2) ** 2 + w // 2 * w + 4 * w * w  # ... plus the 4w -> w projection
    # C5 (2x2 cells) 3 bottlenecks, C4 (4x4) 2, C3 (8x8) 1; the final bottleneck and 3x3 map conv at 16x16
    refine = bottleneck * (3 * 4 + 2 * 16 + 1 * 64) + 256 * (final + 9 * w * j)
    assert full.macs - global_only.macs == refine == 3_832_832
    assert full.params == global_only.params == sum(p.numel() for p in net.parameters())


# -------------------------------------------------------------------------------------------------- OHKM
def test_hard_keypoint_mining_keeps_exactly_the_k_largest_joint_losses() -> None:
    per_joint = torch.tensor([[1.0, 5.0, 3.0, 2.0], [4.0, 0.0, 6.0, 1.0]])
    assert sorted(hardest_joints(per_joint, 2)[0].tolist()) == [3.0, 5.0]
    assert sorted(hardest_joints(per_joint, 2)[1].tolist()) == [4.0, 6.0]
    maps = torch.zeros(2, 4, 1, 1)
    targets = HeatmapTargets(per_joint.sqrt()[..., None, None], torch.ones(2, 4))  # MSE of a 1-cell map = target²
    assert torch.allclose(heatmap_loss_per_joint(maps, targets, "mse"), per_joint)
    assert heatmap_loss(maps, targets, "mse", top_k=2).item() == pytest.approx((5 + 3 + 6 + 4) / 2)
    assert heatmap_loss(maps, targets, "mse").item() == pytest.approx(22 / 2)
    with pytest.raises(ConfigError, match="top_k=5"):
        hardest_joints(per_joint, 5)


def test_the_heat_map_term_mines_only_the_outputs_it_names() -> None:
    torch.manual_seed(0)
    term = GaussianHeatmapMSE(weight=1.0, ramp="center", input_size=64, sigma=1.0, space="logits",
                              top_k=3, top_k_outputs=["refine"])
    coords = torch.rand(2, 16, 2)
    weights = torch.ones(2, 16, 2)
    weights[0, :4] = 0  # unlabelled joints have zero loss and are mined last
    targets = CoordTargets(coords, weights)
    maps = torch.randn(2, 16, 16, 16)
    per_joint = heatmap_loss_per_joint(maps, term.codec.encode(targets, (16, 16)), "mse")
    top3 = per_joint.sort(dim=1, descending=True).values[:, :3].sum() / 2
    assert term({"name": "refine", "maps": maps}, targets, {}).item() == pytest.approx(top3.item(), rel=1e-6)
    assert term({"name": "global_c2", "maps": maps}, targets, {}).item() == pytest.approx(
        (per_joint.sum() / 2).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="top_k_outputs names output 'refine', which HeatmapNet does not have"):
        cfg = compose_config(["method=h1", "method.loss.heatmap.top_k=8", "method.loss.heatmap.top_k_outputs=[refine]"])
        build_module(cfg, data_info(cfg))


def test_cpn_with_h1_and_i1_mines_the_refine_output_only() -> None:
    for method in ("h1", "i1"):
        cfg = compose_config([f"method={method}", *SMALL])
        module = build_module(cfg, data_info(cfg))
        term = module.loss.terms["heatmap"]
        assert module.output_names == NAMES and (term.top_k, term.top_k_outputs) == (8, ["refine"])
    cfg = compose_config(["method=h1", *SMALL, "method.net.ohkm.top_k=null"])
    assert build_module(cfg, data_info(cfg)).loss.terms["heatmap"].top_k is None
    for bad, match in (("outputs=[out]", "'out' is not an output of CPN"), ("top_k=17", "more than the 16 joints")):
        cfg = compose_config(["method=h1", *SMALL, f"method.net.ohkm.{bad}"])
        with pytest.raises(ConfigError, match=match):
            build_module(cfg, data_info(cfg))


@pytest.mark.slow
def test_a_tiny_i1_training_evaluates_every_output(tmp_path: Path) -> None:
    overrides = ["experiment=integral_synth2d", "method=i1", *SMALL, "cut=all", "trainer.max_epochs=2",
                 "method.pretrain_epochs=1", "method.scheduler.milestones=[1]"]
    cfg = compose_config(["debug=tiny", "logger=none", "trainer.precision=32-true", "num_threads=1",
                          "data.sources.synth.length.val=16", "data.sources.synth.length.test=16",
                          f"paths.runs_dir={tmp_path}", *overrides])
    metrics = train_task(cfg, run_path=tmp_path / "cpn", overrides=overrides, multirun=False)
    saved = json.loads((tmp_path / "cpn" / "metrics.json").read_text())
    assert saved["final"] == metrics["final"]
    for name in NAMES:
        assert 0 <= saved["final"][f"val/pckh@0.5@{name}"] <= 100 and f"test/auc@{name}" in saved["test"]
    assert saved["final"]["val/pckh@0.5"] == saved["final"]["val/pckh@0.5@refine"]
    # the Python API predicts with the refine output: cut=all evaluates every output, the last one predicts
    model = posereg.load(tmp_path / "cpn")
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert model.output == "refine" and model.predict(image).joints_2d.shape == (1, 16, 2)
    np.testing.assert_array_equal(posereg.load(tmp_path / "cpn", cut="refine").predict(image).joints_2d,
                                  model.predict(image).joints_2d)
    assert saved["complexity"]["params"] == sum(p.numel() for p in build_module(cfg, data_info(cfg)).net.parameters())
