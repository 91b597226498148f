"""DeepSkeleton: both stages learn, map metrics, hypothesis selection, the whole chain, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from conftest import compose_config
from posereg.cli.hypotheses import main as hypotheses_main
from posereg.codecs import CoordinateCodec, CoordTargets
from posereg.data.collate import collate_samples
from posereg.data.datamodule import data_info
from posereg.data.synth import SynthPose
from posereg.errors import ConfigError
from posereg.inference.hypotheses import Predictions, pose_errors, run_hypotheses, score, select, split_run_list
from posereg.losses import CoordLoss, SkeletonMapBCE
from posereg.methods import build_module
from posereg.methods.deepskeleton import load_stage1
from posereg.metrics.skeleton import SkeletonMapMetric, SkeletonMapSpec
from posereg.nets.skeleton_fcn import SkeletonFCN
from posereg.nets.skeleton_regressor import SkeletonRegressor
from posereg.recipes.train import train_task
from posereg.report.build import build_report
from posereg.runs import RunDir

TINY_DATA = ["data.sources.synth.length.train=64", "data.sources.synth.length.val=16",
             "data.sources.synth.length.test=16", "data.epoch_length=64"]
TINY = ["debug=tiny", "logger=none", "trainer.max_epochs=1", "trainer.precision=32-true", "num_threads=1", *TINY_DATA]
MAPS = ["experiment=deepskeleton_synth_maps", "method.net.width=16"]


def _batch(n: int = 4, split: str = "train") -> dict:
    ds = SynthPose(split=split, joint_set="h36m17", input_size=64, variant="synth3d")
    return collate_samples([ds[i] for i in range(n)])


def _fit(model: torch.nn.Module, loss_fn, steps: int, lr: float = 1e-3) -> tuple[float, float]:
    """(first, last) loss of `steps` Adam steps on one fixed batch."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr)
    values = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss))
    return values[0], values[-1]


# ------------------------------------------------------------------------------------ the two stages
def test_stage1_fcn_outputs_and_halves_its_map_loss_on_a_fixed_batch() -> None:
    torch.set_num_threads(1)
    batch = _batch()
    net = SkeletonFCN("resnet18", 17, 3, 64, width=16)
    assert net.output_names == ["map2", "map4", "map8", "map16"]
    outs = net(batch["image"])
    assert [tuple(o["skeleton_logits"].shape) for o in outs] == [(4, 6, s, s) for s in (2, 4, 8, 16)]
    assert torch.isnan(outs[0]["coords"]).all() and outs[0]["coords"].shape == (4, 17, 3)  # stage 1 has no pose
    assert len(net(batch["image"], cut=1)) == 2  # early exit
    term = SkeletonMapBCE(1.0, "h36m17", 64, {"width": 2.0})
    targets = CoordTargets(None, None, batch)
    first, last = _fit(net, lambda: sum(term(o, targets, {}) for o in net(batch["image"])), steps=25, lr=3e-3)
    assert last < 0.5 * first, (first, last)


def test_stage2_regressor_halves_its_l2_loss_on_gt_maps() -> None:
    torch.set_num_threads(1)
    batch = _batch()
    spec = SkeletonMapSpec("h36m17", 64, width=2.0)
    maps, ordered = spec.render(batch)
    assert maps.shape == (4, 6, 16, 16) and bool(ordered.all())  # synth3d: depth order everywhere
    net = SkeletonRegressor("resnet18", 17, 3, 64, source="gt", regress_size=64)
    targets = CoordinateCodec(64, 3).encode(batch)
    term = CoordLoss("l2", 1.0)
    first, last = _fit(net, lambda: term(net(batch["image"], maps=maps)[0], targets, {}), steps=25)
    assert last < 0.5 * first, (first, last)
    with pytest.raises(ConfigError, match="6-channel maps"):
        net(batch["image"], maps=batch["image"])


def test_stage2_network_takes_the_crop_and_draws_its_maps_with_an_attached_stage1() -> None:
    batch = _batch(2)
    fcn = SkeletonFCN("resnet18", 17, 3, 64, width=16)
    net = SkeletonRegressor("resnet18", 17, 3, 64, source="predicted", regress_size=64)
    net.attach_stage1(fcn)
    net.train()
    assert not fcn.training and not any(p.requires_grad for p in fcn.parameters())  # frozen, BN statistics kept
    net.eval()
    with torch.no_grad():
        maps = fcn(batch["image"])[-1]["skeleton_logits"].sigmoid()
        assert torch.allclose(net(batch["image"])[0]["coords"], net(batch["image"], maps=maps)[0]["coords"])
    rgb = SkeletonRegressor("resnet18", 17, 3, 64, source="rgb", regress_size=64)
    with pytest.raises(ConfigError, match="takes no stage-1 maps"):
        rgb.attach_stage1(fcn)


def test_map_loss_is_zero_for_the_target_and_masks_unordered_backgrounds() -> None:
    batch = _batch(2)
    spec = SkeletonMapSpec("h36m17", 64, width=2.0)
    target, _ = spec.render(batch, 8)
    perfect = torch.logit(target.clamp(1e-6, 1 - 1e-6))
    term = SkeletonMapBCE(1.0, "h36m17", 64, {"width": 2.0})
    assert float(term({"skeleton_logits": perfect}, CoordTargets(None, None, batch), {})) < 1e-3
    flat = torch.zeros(2, 6, 8, 8)
    unordered = {**batch, "weights": batch["weights"].clone()}
    unordered["weights"][..., 2] = 0  # 2D-only labels: no depth order
    full = float(term({"skeleton_logits": flat}, CoordTargets(None, None, batch), {}))
    fg_only = float(term({"skeleton_logits": flat}, CoordTargets(None, None, unordered), {}))
    assert 0 < fg_only < full


def test_map_metric_values() -> None:
    batch = _batch(3, "val")
    metric = SkeletonMapMetric("h36m17", 64, {"width": 2.0})
    target, _ = metric.spec.render(batch, 16)
    metric.update_from_batch({"skeleton_maps": target}, batch)
    perfect = {k: float(v) for k, v in metric.compute().items()}
    assert perfect == {"skel_iou_fg": 100.0, "skel_mae_fg": 0.0, "skel_iou_bg": 100.0, "skel_mae_bg": 0.0}
    metric.reset()
    metric.update(torch.zeros_like(target), target, torch.tensor([True, True, False]))
    empty = metric.compute()
    assert float(empty["skel_iou_fg"]) == 0.0
    fg_mean = float(target[:, :3].mean() * 100)
    assert float(empty["skel_mae_fg"]) == pytest.approx(fg_mean, rel=1e-6)
    metric.reset()
    metric.update(target, target, torch.zeros(3, dtype=torch.bool))
    assert torch.isnan(metric.compute()["skel_iou_bg"])  # no sample with a depth order


# ------------------------------------------------------------------------------------------ selection
def _hand_made(k: int, n: int = 5, j: int = 4, seed: int = 0) -> tuple[list[Predictions], dict]:
    g = torch.Generator().manual_seed(seed)
    gt = {"joints_3d": torch.randn(n, j, 3, generator=g, dtype=torch.float64) * 100 + torch.tensor([0, 0, 4000.0]),
          "joints_2d": torch.rand(n, j, 2, generator=g) * 64, "weights": torch.ones(n, j, 3),
          "crop_to_image": torch.tensor([[2.0, 0, 10], [0, 2.0, 20]]).expand(n, 2, 3).clone()}
    preds = [Predictions(torch.rand(n, j, 2, generator=g, dtype=torch.float64) * 128,
                         gt["joints_3d"] + torch.randn(n, j, 3, generator=g, dtype=torch.float64) * 50, gt)
             for _ in range(k)]
    return preds, gt


def test_selection_keeps_the_hypothesis_matching_the_2d_source() -> None:
    preds, _ = _hand_made(3)
    want = torch.tensor([1, 2, 0, 1, 2])
    source = torch.stack([preds[int(k)].image_2d[i] for i, k in enumerate(want)])
    sel = select(preds, source, torch.ones(5, 4, dtype=torch.bool), root=0)
    assert sel.chosen.tolist() == want.tolist()
    assert torch.equal(sel.poses["selected"][0], source)
    assert torch.equal(sel.poses["single"][1], preds[0].camera_3d)
    ens = sel.poses["ensemble"][1]
    assert torch.allclose(ens, torch.stack([p.camera_3d for p in preds]).mean(0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_oracle_never_scores_worse_than_any_single_hypothesis(seed: int) -> None:
    preds, gt = _hand_made(4, n=32, j=6, seed=seed)
    sel = select(preds, preds[0].image_2d, torch.ones(32, 6, dtype=torch.bool), root=0)
    nodes = {"mpjpe": {"_target_": "posereg.metrics.MPJPE", "actions": None}}
    mpjpe = {name: float(score(nodes, img, cam, gt)["mpjpe"]) for name, (img, cam) in sel.poses.items()}
    singles = [mpjpe[f"h{k}"] for k in range(4)]
    assert mpjpe["oracle"] <= min(singles) + 1e-9
    assert mpjpe["oracle"] < max(singles)
    per_sample = pose_errors(torch.stack([p.camera_3d for p in preds]), gt["joints_3d"], torch.ones(32, 6) > 0, 0)
    assert torch.equal(sel.oracle, per_sample.argmin(0))


def test_run_lists_with_commas_in_run_names(tmp_path: Path) -> None:
    a, b = tmp_path / "x=1,seed=0", tmp_path / "x=2,seed=0"
    a.mkdir(), b.mkdir()
    assert split_run_list(f"{a},{b}") == [a, b]
    with pytest.raises(ConfigError, match="not a run directory"):
        split_run_list(f"{a},{tmp_path / 'nope'}")


# --------------------------------------------------------------------------------- the whole chain
def _train(tmp_path: Path, name: str, *overrides: str) -> Path:
    cfg = compose_config([*TINY, f"paths.runs_dir={tmp_path}", *overrides])
    path = tmp_path / name
    metrics = train_task(cfg, run_path=path, overrides=list(overrides), multirun=False)
    assert metrics is not None and RunDir(path).read_status()["status"] == "done"
    return path


@pytest.mark.slow
def test_chain_stage1_stage2_on_predicted_maps_hypotheses_and_report(tmp_path: Path, capsys) -> None:
    stage2 = []
    for width in (1.0, 2.0):
        maps = _train(tmp_path, f"maps_w{width:g}", *MAPS, f"method.skeleton.width={width}")
        m = json.loads((maps / "metrics.json").read_text())
        assert m["monitor"] == "val/skel_iou_fg" and 0 <= m["final"]["val/skel_iou_fg"] <= 100
        assert m["final"]["val/loss"] > 0 and m["test"]["test/loss"] > 0  # NaN would fail both
        stage2.append(_train(tmp_path, f"reg,w={width:g}", "experiment=deepskeleton_synth_regress",
                             f"method.skeleton.width={width}", f"method.input.stage1_run='{maps}'"))
    out = tmp_path / "hyp"
    assert hypotheses_main([f"runs={stage2[0]},{stage2[1]}", "source=gt", f"out={out}", "num_threads=1"]) == 0
    run = RunDir(out)
    assert run.read_status()["status"] == "done"
    assert yaml.safe_load(run.overrides_file.read_text())[:3] == [
        "method=deepskeleton_regress", "method.input.source=predicted", "source=gt"]
    test = json.loads(run.metrics_file.read_text())["test"]
    singles = [test["test/mpjpe@h0"], test["test/mpjpe@h1"]]
    assert test["test/mpjpe@single"] == singles[0] and test["test/mpjpe"] == test["test/mpjpe@selected"]
    assert test["test/mpjpe@oracle"] <= min(singles) + 1e-6
    assert all(f"test/{m}@{v}" in test for m in ("mpjpe", "pa_mpjpe", "reproj_px") for v in
               ("single", "selected", "oracle", "ensemble"))
    extras = json.loads((out / "hypotheses.json").read_text())
    assert extras["samples"] == 16 and sum(extras["selected_share"]) == pytest.approx(1.0)
    report = build_report([out], "deepskeleton_table", tmp_path / "report", plots=False)
    cell = report.table.cells[("predicted", "selected", "test/mpjpe")]
    assert cell.values == [pytest.approx(test["test/mpjpe@selected"])]
    assert "Predicted skeleton map" in report.files["md"].read_text()
    # a 2D source that sees other samples (another seed) is refused, naming it
    other = _train(tmp_path, "gt_seed1", "experiment=deepskeleton_synth_regress", "method.input.source=gt", "seed=1")
    with pytest.raises(ConfigError, match="sample 0 is not the first run's sample"):
        run_hypotheses([stage2[0]], source=str(other), out=tmp_path / "bad")
    assert RunDir(tmp_path / "bad").read_status()["status"] == "failed"


# --------------------------------------------------------------------------------------- bad input
def _fake_run(tmp_path: Path, name: str, *overrides: str, checkpoint: bool = True) -> Path:
    """A run directory with a saved config (and an empty checkpoint file): enough for the checks before any work."""
    cfg = compose_config([*TINY, *overrides])
    run = RunDir(tmp_path / name)
    run.config_file.parent.mkdir(parents=True)
    run.config_file.write_text(OmegaConf.to_yaml(cfg))
    if checkpoint:
        run.checkpoint_dir.mkdir()
        run.best_ckpt.write_bytes(b"")
    return run.path


def test_hypotheses_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    reg3d = _fake_run(tmp_path, "a", "experiment=deepskeleton_synth_regress", "method.input.source=gt")
    reg2d = _fake_run(tmp_path, "b", "experiment=deepskeleton_synth_regress", "method.input.source=gt", "data=synth2d")
    with pytest.raises(ConfigError, match="K = 0"):
        run_hypotheses([])
    with pytest.raises(ConfigError, match="joint set"):
        run_hypotheses([reg3d, reg2d])
    fewer = _fake_run(tmp_path, "c", "experiment=deepskeleton_synth_regress", "method.input.source=gt",
                      "data.sources.synth.length.test=8")
    with pytest.raises(ConfigError, match="source=.*8 test samples.*do not align"):
        run_hypotheses([reg3d], source=str(fewer))
    flat = _fake_run(tmp_path, "d", "experiment=deepskeleton_synth_regress", "method.input.source=gt",
                     "data=synth2d", "method.dims=3")
    with pytest.raises(ConfigError, match="3D regression on 2D-only data"):
        run_hypotheses([flat])
    maps = _fake_run(tmp_path, "e", *MAPS)
    with pytest.raises(ConfigError, match="stage-1 skeleton-map run predicts no pose"):
        run_hypotheses([maps])
    untrained = _fake_run(tmp_path, "f", "experiment=deepskeleton_synth_regress", checkpoint=False)
    with pytest.raises(ConfigError, match=r"^runs=.*/f: no checkpoints/best.ckpt"):
        run_hypotheses([untrained])
    assert hypotheses_main([f"runs={reg3d}", "split=train"]) == 2


def test_stage2_settings_errors_name_the_setting(tmp_path: Path) -> None:
    cfg = compose_config([*TINY, "experiment=deepskeleton_synth_regress"])
    with pytest.raises(ConfigError, match="method.input.stage1_run is required"):
        build_module(cfg, data_info(cfg))
    missing = _fake_run(tmp_path, "maps", *MAPS, checkpoint=False)
    cfg = compose_config([*TINY, "experiment=deepskeleton_synth_regress", f"method.input.stage1_run='{missing}'"])
    with pytest.raises(ConfigError, match=r"method.input.stage1_run=.*no checkpoints/best.ckpt"):
        build_module(cfg, data_info(cfg))
    spec = SkeletonMapSpec("h36m17", 64, width=2.0)
    mpii = _fake_run(tmp_path, "maps2d", *MAPS, "data=synth2d")
    with pytest.raises(ConfigError, match="joint set mpii16, this run uses h36m17"):
        load_stage1(str(mpii), "h36m17", 64, spec)
    wider = _fake_run(tmp_path, "maps3", *MAPS, "method.skeleton.width=3")
    with pytest.raises(ConfigError, match="pair the runs of one configuration"):
        load_stage1(str(wider), "h36m17", 64, spec)
    cfg = compose_config([*TINY, "experiment=deepskeleton_synth_regress", "method.input.source=gt", "flip_test=true"])
    with pytest.raises(ConfigError, match="flip_test=true"):
        build_module(cfg, data_info(cfg))
    cfg = compose_config([*TINY, *MAPS, "data.monitor=val/mpjpe"])
    with pytest.raises(ConfigError, match="data.monitor=val/mpjpe"):
        build_module(cfg, data_info(cfg))
