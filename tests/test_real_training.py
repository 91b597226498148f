"""Real training on the bundled slices: each `experiment=slice_<dataset>` trains, validates, tests, writes its run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from conftest import compose_config
from posereg.paths import real_slices_dir
from posereg.recipes.train import train_task
from posereg.runs import RunDir

SLICES = real_slices_dir()
CUBE_DIAGONAL_MM = 2000.0 * math.sqrt(3)  # predictions live in the 2 m cube around the root


def slice_root(name: str) -> Path:
    """The slice folder of a dataset; skips the test when it is not there."""
    path = SLICES / name
    if not path.is_dir():
        pytest.skip(f"real-data slice {path} is absent (set POSEREG_REAL_SLICES to its folder)")
    return path


def train(tmp_path: Path, experiment: str, *overrides: str) -> tuple[dict, RunDir]:
    """`posereg-train experiment=<experiment> <overrides>` in process; its metrics.json and run directory."""
    cfg = compose_config([f"experiment={experiment}", f"paths.runs_dir={tmp_path / 'runs'}",
                          "callbacks.progress_bar=none", *overrides])
    run = RunDir(tmp_path / "run")
    train_task(cfg, run_path=run.path, overrides=[], multirun=False)
    status = run.read_status()
    assert status["status"] == "done" and status["error"] is None and status["attempts"] == 1
    assert run.last_ckpt.is_file() and run.best_ckpt.is_file()
    return json.loads(run.metrics_file.read_text()), run


def csv_rows(run: RunDir) -> list[dict[str, float]]:
    """The run's CSV log as rows of the columns that have a value."""
    with (run.path / "csv" / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def assert_in_range(metrics: dict, stages: tuple[str, ...], names: tuple[str, ...], low: float, high: float) -> None:
    """Every stage/name is present, finite and within [low, high]."""
    for stage in stages:
        block = metrics["test"] if stage == "test" else metrics["final"]
        for name in names:
            value = block[f"{stage}/{name}"]
            assert math.isfinite(value) and low <= value <= high, f"{stage}/{name}={value}"


def assert_test_is_best_val(metrics: dict) -> None:
    """val and test read the same slice and test evaluates best.ckpt: test numbers equal the best val ones."""
    best = {k.removeprefix("val/"): v for k, v in metrics["best"].items()}
    test = {k.removeprefix("test/"): v for k, v in metrics["test"].items()}
    assert best.keys() == test.keys()
    for name, value in best.items():
        assert test[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_mpii_slice_overfits(tmp_path):
    metrics, run = train(tmp_path, "slice_mpii", f"data.root={slice_root('mpii')}")
    assert metrics["monitor"] == "val/pckh_proxy@0.5"
    assert metrics["global_step"] == 20 and metrics["epochs"] == 2  # 2 epochs of 10 batches of the 5 images
    names = ("pckh_proxy@0.5", "pckh_proxy@0.1", "auc_proxy")
    assert_in_range(metrics, ("val", "test"), names, 0.0, 100.0)
    assert not any(k.startswith(("val/pckh@", "test/pckh@")) for k in metrics["final"] | metrics["test"])
    assert len(metrics["extras"]["val"]["pckh_proxy_curve"]) == 51
    assert_test_is_best_val(metrics)
    # learning: the same 5 images in train and val, no augmentation, so 20 steps over-fit them
    rows = csv_rows(run)
    step0_loss = next(r["train/loss"] for r in rows if "train/loss" in r and r["step"] == 0)
    val = [r for r in rows if "val/pckh_proxy@0.5" in r]
    assert len(val) == 2
    first, final = val[0]["val/pckh_proxy@0.5"], metrics["final"]["val/pckh_proxy@0.5"]
    assert final == pytest.approx(val[-1]["val/pckh_proxy@0.5"])
    assert final >= first + 40.0, (first, final)  # measured: 6.1 after 10 steps -> 69.7 after 20
    assert metrics["final"]["val/loss"] < 0.4 * step0_loss  # measured: 4.57 -> 1.25


def test_coco_slice_trains_and_reports_oks_ap(tmp_path):
    metrics, _ = train(tmp_path, "slice_coco", f"data.root={slice_root('coco')}")
    assert metrics["monitor"] == "val/coco_ap"
    assert metrics["global_step"] == 4  # 12 people, batches of 6, 2 epochs
    names = ("coco_ap", "coco_ap50", "coco_ap75", "coco_ar", "coco_ar50")
    assert_in_range(metrics, ("val", "test"), names, 0.0, 1.0)  # pycocotools gives -1 when nothing matched
    assert_test_is_best_val(metrics)


def test_h36m_slice_trains_in_3d(tmp_path):
    metrics, _ = train(tmp_path, "slice_h36m", f"data.root={slice_root('h36m')}")
    assert metrics["monitor"] == "val/mpjpe"
    assert metrics["global_step"] == 4
    assert_in_range(metrics, ("val", "test"), ("mpjpe", "pa_mpjpe", "n_mpjpe"), 1.0, CUBE_DIAGONAL_MM)
    final = metrics["final"]
    assert final["val/pa_mpjpe"] < final["val/mpjpe"]
    # one frame per action: the pooled MPJPE is the mean of the 4 per-action values
    per_action = {k: v for k, v in metrics["extras"]["val"].items() if k.startswith("mpjpe/")}
    assert sorted(per_action) == ["mpjpe/Directions", "mpjpe/Greeting", "mpjpe/SittingDown", "mpjpe/WalkDog"]
    mean = sum(per_action.values()) / 4
    assert final["val/mpjpe"] == pytest.approx(mean, rel=1e-5)
    assert final["val/mpjpe_action_mean"] == pytest.approx(mean, rel=1e-5)
    assert_test_is_best_val(metrics)


def test_mpi_inf_3dhp_slice_trains_on_train_and_tests_on_test_subjects(tmp_path):
    metrics, _ = train(tmp_path, "slice_mpi_inf_3dhp", f"data.root={slice_root('mpi_inf_3dhp')}")
    assert metrics["monitor"] == "val/pck3d"
    assert metrics["global_step"] == 4  # 2 training frames (S4, S8), batches of 2, 4 steps
    assert_in_range(metrics, ("val", "test"), ("pck3d", "auc3d"), 0.0, 100.0)
    assert_in_range(metrics, ("val", "test"), ("mpjpe", "pa_mpjpe"), 1.0, CUBE_DIAGONAL_MM)
    final = metrics["final"]
    assert final["val/auc3d"] <= final["val/pck3d"]  # AUC averages PCK over 0..150 mm, PCK@150 is its maximum
    assert_test_is_best_val(metrics)


def test_h36m_mpii_slices_train_mixed_batches(tmp_path):
    metrics, _ = train(tmp_path, "slice_h36m_mpii", f"data.h36m_root={slice_root('h36m')}",
                       f"data.mpii_root={slice_root('mpii')}")
    assert metrics["monitor"] == "val/mpjpe"
    assert metrics["global_step"] == 4
    assert_in_range(metrics, ("val", "test"), ("mpjpe", "pa_mpjpe"), 1.0, CUBE_DIAGONAL_MM)
    assert_in_range(metrics, ("val", "test"), ("pckh_proxy@0.5", "auc_proxy"), 0.0, 100.0)
    # MPJPE sees only the Human3.6M frames (MPII has no 3D label): pooled = mean of their 4 actions
    per_action = {k: v for k, v in metrics["extras"]["val"].items() if k.startswith("mpjpe/")}
    assert len(per_action) == 4
    assert metrics["final"]["val/mpjpe"] == pytest.approx(sum(per_action.values()) / 4, rel=1e-5)
    assert_test_is_best_val(metrics)
