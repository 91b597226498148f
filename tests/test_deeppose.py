"""DeepPose's cascade: joint crops, the pose diameter, crop-unit targets, the simulated errors, the stage chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import posereg
from conftest import compose_config
from posereg.codecs import CoordTargets
from posereg.data.datamodule import data_info
from posereg.errors import ConfigError
from posereg.losses.deeppose import CropL2, crop_offsets
from posereg.methods import build_module
from posereg.methods.deeppose import fit_normal, sample_normal
from posereg.nets.deeppose import diameter_pairs
from posereg.ops.joint_crops import joint_crops, pose_diameter
from posereg.recipes.train import train_task
from posereg.report.build import build_report
from posereg.runs import RunDir
from posereg.weights import load_checkpoint

TINY_DATA = ["data.sources.synth.length.val=16", "data.sources.synth.length.test=16", "data.epoch_length=32"]
TINY = ["debug=tiny", "logger=none", "trainer.max_epochs=1", "trainer.precision=32-true", "num_threads=1", *TINY_DATA]
SMALL = ["backbone.name=resnet10t", "data.input_size=64"]


def _ramp_image(h: int = 20, w: int = 24) -> torch.Tensor:
    """(1,2,h,w): channel 0 = 100 * row + column, channel 1 = its negative (linear, so bilinear reads are exact)."""
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
    value = 100 * rows + cols
    return torch.stack([value, -value])[None]


# ----------------------------------------------------------------------------------------------- the crop op
def test_a_crop_of_its_own_size_returns_the_image_pixels() -> None:
    image = _ramp_image()
    centres = torch.tensor([[[10.0, 12.0], [5.0, 4.0]]], dtype=torch.float64)  # (x, y) px: corners 6..14, 8..16
    crops = joint_crops(image, centres, torch.tensor([[8.0, 4.0]], dtype=torch.float64), size=8)
    assert crops.shape == (1, 2, 2, 8, 8)
    assert torch.equal(crops[0, 0], image[0, :, 8:16, 6:14])
    # a side of 4 pixels sampled 8 times: x = 3.25, 3.75, ... and y = 2.25, ..., i.e. pixel-centre indices
    # (continuous coordinate - 0.5) 2.75, 3.25, ... and 1.75, 2.25, ...
    half = 0.5 * torch.arange(8, dtype=torch.float64)
    expected = 100 * (1.75 + half)[:, None] + (2.75 + half)[None, :]
    assert torch.allclose(crops[0, 1, 0], expected) and torch.allclose(crops[0, 1, 1], -expected)


def test_a_crop_twice_the_size_averages_pixel_pairs_and_is_zero_outside_the_image() -> None:
    image = _ramp_image()
    crops = joint_crops(image, torch.tensor([[[12.0, 10.0]]], dtype=torch.float64),
                        torch.tensor([[8.0]], dtype=torch.float64), size=4)
    idx = 8.5 + 2 * torch.arange(4, dtype=torch.float64)  # samples at x = 9, 11, ...: between two pixel centres
    assert torch.allclose(crops[0, 0, 0], 100 * (idx - 2)[:, None] + idx[None, :])
    corner = joint_crops(image, torch.zeros(1, 1, 2, dtype=torch.float64), torch.tensor([[4.0]], dtype=torch.float64),
                         size=4)[0, 0, 0]  # samples at -1.5, -0.5 (outside: 0), 0.5, 1.5 (pixels 0, 1)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[2:, 2:] = torch.tensor([[0.0, 1.0], [100.0, 101.0]], dtype=torch.float64)
    assert torch.allclose(corner, expected)


def test_the_pose_diameter_is_the_mean_torso_diagonal() -> None:
    pairs = diameter_pairs([["l_shoulder", "r_hip"], ["r_shoulder", "l_hip"]], "mpii16")
    assert pairs == [(13, 2), (12, 3)]  # MPII: r_hip 2, l_hip 3, r_shoulder 12, l_shoulder 13
    joints = torch.zeros(1, 16, 2)
    joints[0, 13], joints[0, 2] = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0])  # 5
    joints[0, 12], joints[0, 3] = torch.tensor([6.0, 0.0]), torch.tensor([6.0, 10.0])  # 10
    assert pose_diameter(joints, pairs).tolist() == [7.5]
    with pytest.raises(ConfigError, match="joint 'l_toe' is not in joint set lsp14"):
        diameter_pairs([["l_toe", "r_hip"]], "lsp14")


# ----------------------------------------------------------------------------------- targets and the loss
def test_the_stage_target_is_the_ground_truth_minus_the_previous_estimate_in_crop_units() -> None:
    torch.manual_seed(0)
    cfg = compose_config(["method=deeppose_cascade", *SMALL])
    net = build_module(cfg, data_info(cfg)).net.eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        previous = net(image, cut=0)[0]["coords"]
        gt = previous + torch.linspace(-0.1, 0.1, 2 * 16 * 2).view(2, 16, 2)
        centres, side = net.boxes(previous, image)
        # the correction that makes stage 2 exact is (gt - previous estimate) / side, per joint
        target = crop_offsets(gt, previous, side[..., None] / 64)
        assert torch.allclose(target * side[..., None], (gt - previous) * 64, atol=1e-5)
        refiner = net.refiners[0]
        refiner.weight.zero_()
        refiner.bias.zero_()
        stage2 = net(image)[1]
        assert torch.allclose(stage2["coords"], previous) and torch.allclose(stage2["crop_centre"], previous)
        assert torch.allclose(stage2["crop_side"], side[..., None].expand(-1, -1, 2) / 64)
        weights = torch.ones(2, 16, 2)
        weights[1, 3] = 0  # an unlabelled joint adds nothing
        term = CropL2(weight=1.0)
        expected = (target.square() * weights).sum() / 2
        loss = term(stage2, CoordTargets(gt, weights), {})
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        refiner.bias.copy_(target[0])  # one sample: the per-joint bias is its whole correction
        exact = net(image[:1])[1]
        assert torch.allclose(exact["coords"], gt[:1], atol=1e-6)
        assert term(exact, CoordTargets(gt[:1], weights[:1]), {}).item() == pytest.approx(0.0, abs=1e-9)


# -------------------------------------------------------------------------------------- simulated errors
def test_the_fitted_normal_is_the_masked_sample_mean_and_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    errors = torch.randn(50, 3, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(50, 3, dtype=torch.bool)
    mask[::2, 1] = False  # joint 1 labelled in half of the samples
    mask[:, 2] = False
    mask[0, 2] = True  # joint 2 seen once: no spread
    mean, cov = fit_normal(errors, mask)
    for j in (0, 1):
        e = errors[mask[:, j], j].numpy()
        assert np.allclose(mean[j].numpy(), e.mean(0)) and np.allclose(cov[j].numpy(), np.cov(e.T))
    assert torch.equal(mean[2], errors[0, 2]) and torch.equal(cov[2], torch.zeros(2, 2, dtype=torch.float64))


def test_simulated_displacements_follow_the_fitted_normal() -> None:
    mean = torch.tensor([[0.02, -0.01], [0.0, 0.03]], dtype=torch.float64)
    cov = torch.tensor([[[4e-4, 1e-4], [1e-4, 2e-4]], [[1e-4, -5e-5], [-5e-5, 9e-4]]], dtype=torch.float64)
    draws = sample_normal(mean, cov, 200_000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (200_000, 2, 2)
    for j in range(2):
        d = draws[:, j].numpy()
        assert np.allclose(d.mean(0), mean[j].numpy(), atol=2e-4)  # ~4 standard errors of the mean
        assert np.allclose(np.cov(d.T), cov[j].numpy(), atol=1e-5, rtol=0.02)
    # a zero covariance gives the mean (up to the 1e-6 of the factorization's jitter)
    assert torch.allclose(sample_normal(mean, torch.zeros_like(cov), 3)[:, 1], mean[1].expand(3, 2), atol=1e-5)


def test_training_crops_mix_predictions_and_simulated_ground_truth() -> None:
    torch.manual_seed(0)
    cfg = compose_config(["method=deeppose_cascade", *SMALL, "method.cascade.simulated_fraction=1.0"])
    module = build_module(cfg, data_info(cfg))
    module.error_mean.copy_(torch.tensor([0.05, -0.02]).expand(16, 2))
    module.error_cov.copy_(torch.eye(2) * 1e-4)
    b = 256
    gt = 0.3 + 0.4 * torch.rand(b, 16, 2)
    weights = torch.ones(b, 16, 3)
    weights[:, 0] = 0  # joint 0 unlabelled: always around the prediction
    image = torch.zeros(b, 3, 64, 64)
    previous = torch.full((b, 16, 2), 0.5)
    module._batch = {"image": image, "joints_2d": gt * 64, "weights": weights}
    centres, side = module.training_boxes(previous, image)
    shift = centres / 64 - gt
    assert shift[:, 1:].mean(dim=(0, 1)).tolist() == pytest.approx([0.05, -0.02], abs=2e-3)
    assert shift[:, 1:].std(dim=(0, 1)).tolist() == pytest.approx([0.01, 0.01], rel=0.05)
    assert torch.equal(centres[:, 0], previous[:, 0] * 64)
    _, gt_side = module.net.boxes(gt, image)
    assert torch.equal(side[:, 1:], gt_side[:, 1:]) and not torch.equal(side, gt_side)
    module.simulated_fraction = 0.0
    assert all(torch.equal(a, c) for a, c in zip(module.training_boxes(previous, image),
                                                  module.net.boxes(previous, image), strict=True))


# ----------------------------------------------------------------------------------------- the stage chain
def _train(tmp_path: Path, name: str, *overrides: str) -> dict:
    cfg = compose_config([*TINY, f"paths.runs_dir={tmp_path}", *overrides])
    metrics = train_task(cfg, run_path=tmp_path / name, overrides=list(overrides), multirun=False)
    assert metrics is not None and RunDir(tmp_path / name).read_status()["status"] == "done"
    return metrics


@pytest.mark.slow
def test_a_three_stage_cascade_trains_stage_by_stage_and_reports_every_stage(tmp_path: Path) -> None:
    # seed 1 throughout: a seed of the template's grid (1-3), which the report below reads
    one = _train(tmp_path, "stage1", "experiment=integral_synth2d", "method=r1", *SMALL, "seed=1")
    two = _train(tmp_path, "stage2,seed=1", "experiment=deeppose_synth", *SMALL, "method.cascade.fit_batches=2",
                 f"method.cascade.previous_run='{tmp_path / 'stage1'}'", "seed=1")
    for m in ("pckh@0.5", "pckh@0.1", "auc"):  # stage 1 of the cascade is the R1 run, frozen
        assert two["final"][f"val/{m}@stage1"] == pytest.approx(one["final"][f"val/{m}"], abs=1e-9)
        assert two["final"][f"val/{m}"] == two["final"][f"val/{m}@stage2"]
    state = load_checkpoint(tmp_path / "stage2,seed=1" / "checkpoints" / "last.ckpt")["state_dict"]
    assert bool(state["error_fitted"]) and bool((state["error_cov"].diagonal(dim1=1, dim2=2) > 0).all())
    three = _train(tmp_path, "stage3,seed=1", "experiment=deeppose_synth", *SMALL, "method.cascade.stages=3",
                   "method.cascade.fit_batches=2", f"method.cascade.previous_run='{tmp_path / 'stage2,seed=1'}'",
                   "seed=1")
    saved = json.loads((tmp_path / "stage3,seed=1" / "metrics.json").read_text())
    assert saved["final"] == three["final"]
    for stage in ("stage1", "stage2"):  # the frozen stages score what they scored in their own run
        assert three["final"][f"val/pckh@0.5@{stage}"] == pytest.approx(two["final"][f"val/pckh@0.5@{stage}"],
                                                                      abs=1e-9)
    assert {f"test/pckh@0.1@stage{s}" for s in (1, 2, 3)} <= set(three["test"])
    # the Python API predicts with the last stage, stage by stage as evaluation does
    image = np.random.default_rng(0).integers(0, 255, (80, 70, 3), dtype=np.uint8)
    model = posereg.load(tmp_path / "stage3,seed=1")
    assert model.output == "stage3"
    last = model.predict(image, boxes=[[5, 5, 60, 70]]).joints_2d
    np.testing.assert_array_equal(posereg.load(tmp_path / "stage3,seed=1", cut="stage3").predict(
        image, boxes=[[5, 5, 60, 70]]).joints_2d, last)
    assert not np.allclose(posereg.load(tmp_path / "stage3,seed=1", cut="stage2").predict(
        image, boxes=[[5, 5, 60, 70]]).joints_2d, last)
    report = build_report([tmp_path / "stage3,seed=1"], "deeppose_cascade", tmp_path / "report", plots=False)
    cell = report.table.cells[("stage3", "0.1", "val/pckh")]
    assert cell.values == [pytest.approx(three["final"]["val/pckh@0.1@stage3"])]
    assert "stage 2" in report.files["md"].read_text()


def test_stage_settings_errors_name_the_setting(tmp_path: Path) -> None:
    cfg = compose_config([*TINY, "experiment=deeppose_synth", *SMALL])
    module = build_module(cfg, data_info(cfg))
    with pytest.raises(ConfigError, match="method.cascade.previous_run is required"):
        module.setup("fit")
    cfg = compose_config(["method=deeppose_cascade", "method.cascade.stages=1"])
    with pytest.raises(ConfigError, match="method.cascade.stages=1: the cascade's first stage alone is R1"):
        build_module(cfg, data_info(cfg))
    cfg = compose_config(["method=deeppose_cascade", "method.output_weights=[0,1]"])
    with pytest.raises(ConfigError, match="trains its last stage alone"):
        build_module(cfg, data_info(cfg))
    cfg = compose_config(["method=deeppose_cascade", "method.cascade.simulated_fraction=1.5"])
    with pytest.raises(ConfigError, match="simulated_fraction=1.5"):
        build_module(cfg, data_info(cfg))
    r1 = _train(tmp_path, "r1", "experiment=integral_synth2d", "method=r1", *SMALL)
    assert r1["final"]
    wrong = [("method.cascade.stages=3", "it has 1 stage"),
             ("data.input_size=96", "data.input_size=64, this run with 96"),
             ("backbone.name=resnet18", "its weights do not fit")]
    for override, match in wrong:
        cfg = compose_config([*TINY, "experiment=deeppose_synth", *SMALL, override,
                              f"method.cascade.previous_run='{tmp_path / 'r1'}'"])
        with pytest.raises(ConfigError, match=match):
            build_module(cfg, data_info(cfg)).setup("fit")
    cfg = compose_config(["method=deeppose_cascade", "method.cascade.trunk_init=imagenet"])
    with pytest.raises(ConfigError, match="trunk_init='imagenet'"):
        build_module(cfg, data_info(cfg))


def test_a_stage_starts_from_the_frozen_previous_run_and_its_trunk(tmp_path: Path) -> None:
    _train(tmp_path, "r1", "experiment=integral_synth2d", "method=r1", *SMALL)
    previous = f"method.cascade.previous_run='{tmp_path / 'r1'}'"
    cfg = compose_config([*TINY, "experiment=deeppose_synth", *SMALL, previous])
    module = build_module(cfg, data_info(cfg))
    module.setup("fit")
    saved = load_checkpoint(tmp_path / "r1" / "checkpoints" / "last.ckpt")["state_dict"]  # debug=tiny: no best.ckpt
    net = module.net
    assert all(torch.equal(v, saved[f"net.{k}"]) for k, v in net.stage1.state_dict().items())
    r1_trunk = net.stage1.backbone.state_dict()
    assert all(torch.equal(v, r1_trunk[k]) for k, v in net.refiners[0].backbone.state_dict().items())
    assert not any(p.requires_grad for p in net.stage1.parameters())
    assert all(p.requires_grad for p in net.refiners[0].parameters())
    module.train()
    assert not net.stage1.training and net.refiners[0].training  # frozen BatchNorm statistics stay put
