"""End-to-end training runs: run directory, resume, skip, retry, seeds, eval, W&B offline, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from conftest import InterruptAt
from posereg.cli.eval import evaluate
from posereg.recipes.train import train_task
from posereg.runs import RunDir, run_key

pytestmark = pytest.mark.slow


class PoisonAt(pl.Callback):
    """Makes every parameter NaN before a given global step, so that step's loss is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


class LastCheckpointProbe(pl.Callback):
    """Records the global step stored in last.ckpt at the start of every epoch after the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[int | None] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            ok = self.path.exists()
            self.seen.append(torch.load(self.path, weights_only=False)["global_step"] if ok else None)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _run(cfg, path: Path, **kw):
    return train_task(cfg, run_path=path, overrides=[], multirun=False, **kw)


def test_tiny_run_writes_run_directory(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=3")
    run = RunDir(tmp_path / "run")
    probe = LastCheckpointProbe(run.last_ckpt)
    metrics = _run(cfg, run.path, extra_callbacks=[probe])
    assert probe.seen == [3, 6]  # last.ckpt written at the end of every epoch (3 batches each)
    status = run.read_status()
    assert status["status"] == "done" and status["attempts"] == 1
    assert status["error"] is None and status["ended_at"] and status["host"]
    saved = json.loads(run.metrics_file.read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["monitor"] == "val/pckh@0.5"
    for block in ("final", "best"):
        for key in ("val/pckh@0.5", "val/pckh@0.1", "val/auc"):
            assert 0.0 <= saved[block][key] <= 100.0
    assert "test/pckh@0.5" in saved["test"]
    assert len(saved["extras"]["val"]["pckh_curve"]) == 51
    # debug=tiny keeps what resume needs, no more: last.ckpt, reduced to the weights once the run is done
    assert run.last_ckpt.is_file() and not run.best_ckpt.exists()
    assert torch.load(run.last_ckpt, map_location="cpu", weights_only=False)["posereg_weights_only"]
    assert (run.path / "csv" / "metrics.csv").is_file()
    assert _weights(run.last_ckpt)  # a real state dict


def test_done_run_is_skipped_and_failed_run_is_retried(make_cfg, tmp_path, capsys):
    cfg = make_cfg()
    run = RunDir(tmp_path / "run")
    _run(cfg, run.path)
    mtime = run.last_ckpt.stat().st_mtime_ns
    _run(cfg, run.path)
    assert "done already" in capsys.readouterr().out
    assert run.read_status()["attempts"] == 1
    assert run.last_ckpt.stat().st_mtime_ns == mtime

    run.update_status(status="failed", error="boom")
    _run(cfg, run.path)
    assert run.read_status()["status"] == "done"
    assert run.read_status()["attempts"] == 2

    cfg.force = True
    _run(cfg, run.path)
    assert run.read_status()["attempts"] == 3
    assert run.last_ckpt.stat().st_mtime_ns != mtime


@pytest.mark.parametrize("stop_step", [3, 4])  # at an epoch boundary (3 batches/epoch) and mid-epoch
def test_resume_matches_uninterrupted_run(make_cfg, tmp_path, stop_step):
    overrides = ("trainer.deterministic=true", "test_after_fit=false")
    straight = RunDir(tmp_path / "straight")
    _run(make_cfg(*overrides), straight.path)

    resumed = RunDir(tmp_path / "resumed")
    with pytest.raises(SystemExit):
        _run(make_cfg(*overrides), resumed.path, extra_callbacks=[InterruptAt(stop_step)])
    assert resumed.read_status()["status"] == "interrupted"
    assert torch.load(resumed.last_ckpt, weights_only=False)["global_step"] == stop_step
    _run(make_cfg(*overrides), resumed.path)
    status = resumed.read_status()
    assert status["status"] == "done" and status["resumed_from"].endswith("last.ckpt")

    a, b = _weights(straight.last_ckpt), _weights(resumed.last_ckpt)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    steps = torch.load(straight.last_ckpt, weights_only=False)["global_step"]
    assert torch.load(resumed.last_ckpt, weights_only=False)["global_step"] == steps == 6


def test_seeds_change_weights_and_data_order(make_cfg, tmp_path):
    weights = {}
    for name, seed in (("s0", 0), ("s0_again", 0), ("s1", 1)):
        cfg = make_cfg(f"seed={seed}", "test_after_fit=false", "trainer.max_epochs=1", "trainer.deterministic=true")
        _run(cfg, tmp_path / name)
        weights[name] = _weights(tmp_path / name / "checkpoints" / "last.ckpt")
    floats = [k for k, v in weights["s0"].items() if v.is_floating_point()]
    assert all(torch.equal(weights["s0"][k], weights["s0_again"][k]) for k in floats)
    assert any(not torch.equal(weights["s0"][k], weights["s1"][k]) for k in floats)


def test_data_order_depends_on_seed(make_cfg):
    from posereg.data import build_datamodule

    def first_batch(seed: int) -> torch.Tensor:
        cfg = make_cfg(f"seed={seed}")
        pl.seed_everything(seed, workers=True, verbose=False)
        dm = build_datamodule(cfg)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))["joints_2d"]

    assert torch.equal(first_batch(0), first_batch(0))
    assert not torch.equal(first_batch(0), first_batch(1))


def test_nan_loss_fails_the_run_and_keeps_clean_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg("callbacks.step_checkpoint.every_n_train_steps=1", "test_after_fit=false")
    run = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        _run(cfg, run.path, extra_callbacks=[PoisonAt(2)])
    assert exc.value.code == 3
    status = run.read_status()
    assert status["status"] == "failed" and status["failed_step"] == 2
    assert "non-finite" in status["error"]
    ckpt = torch.load(run.last_ckpt, weights_only=False)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "overrides",
    [
        ("method=i1", "data=synth2d", "method.dims=3"),
        ("method=r1", "+method/loss@method.loss.heatmap=onehot_ce"),
    ],
    ids=["3d-method-on-2d-data", "heatmap-loss-without-heatmap"],
)
def test_impossible_combination_fails_with_clear_error(make_cfg, tmp_path, capsys, overrides):
    cfg = make_cfg(*overrides)
    run = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        _run(cfg, run.path)
    assert exc.value.code == 2
    assert not run.path.exists()  # refused before it began: nothing left behind
    printed = capsys.readouterr().out
    assert "error" in printed and "method" in printed
    # in a grid the cell is kept, failed, for the report
    assert train_task(cfg, run_path=run.path, overrides=[], multirun=True) is None
    assert run.read_status()["status"] == "failed" and "ConfigError" in run.read_status()["error"]


def test_eval_uses_the_runs_saved_config(make_cfg, tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "default"
    result = subprocess.run(
        [sys.executable, "-m", "posereg.train", "debug=tiny", "logger=none", "trainer.max_epochs=1",
         f"paths.runs_dir={tmp_path / 'runs'}", "callbacks.best_checkpoint=null"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = [p for p in run_dir.iterdir() if p.is_dir()]
    # observing callbacks never enter the run key
    assert path.name == run_key(["callbacks.best_checkpoint=null", "debug=tiny", "trainer.max_epochs=1"], 0)
    assert path.name == "debug=tiny,trainer.max_epochs=1,seed=0"
    assert (path / ".hydra" / "config.yaml").is_file()
    final = json.loads((path / "metrics.json").read_text())["final"]
    # a changed default must not leak into the evaluation of an existing run
    monkeypatch.setenv("POSEREG_CONF_DIR", str(tmp_path / "nowhere"))
    out = evaluate(path, split="val")
    assert math.isclose(out["metrics"]["val/pckh@0.5"], final["val/pckh@0.5"], abs_tol=1e-6)
    assert (path / "eval_val.json").is_file()
    flipped = evaluate(path, split="val", overrides=["flip_test=true"])
    assert "val/pckh@0.5" in flipped["metrics"]


def test_wandb_offline_run_id_is_reused_on_resume(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = make_cfg("logger=wandb", "test_after_fit=false")
    run = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit):
        _run(cfg, run.path, extra_callbacks=[InterruptAt(2)])
    run_id = run.wandb_id_file.read_text().strip()
    assert len(run_id) == 8
    _run(make_cfg("logger=wandb", "test_after_fit=false"), run.path)
    assert run.wandb_id_file.read_text().strip() == run_id
    offline = sorted((run.path / "wandb").glob("offline-run-*"))
    assert offline and all(p.name.endswith(run_id) for p in offline)
    assert run.read_status()["status"] == "done" and run.read_status()["attempts"] == 2


def test_two_metrics_reporting_one_name_fail_instead_of_being_averaged(make_cfg, tmp_path, capsys):
    cfg = make_cfg("data=synth3d", "+data.metrics.twin._target_=posereg.metrics.MPJPE")
    run = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        _run(cfg, run.path)
    assert exc.value.code == 2
    assert run.read_status()["status"] == "failed"
    assert "data.metrics.twin and data.metrics.mpjpe both report 'mpjpe'" in capsys.readouterr().out.replace("\n", "")


class ThreadProbe(pl.Callback):
    """Records torch's intra-op thread count during training."""

    def __init__(self) -> None:
        self.threads: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.threads = torch.get_num_threads()


def test_num_threads_sets_torch_threads_and_not_the_run_key(make_cfg, tmp_path):
    before = torch.get_num_threads()
    probe = ThreadProbe()
    try:
        _run(make_cfg("num_threads=1", "trainer.max_epochs=1"), tmp_path / "run", extra_callbacks=[probe])
    finally:
        torch.set_num_threads(before)
    assert probe.threads == 1
    # a device setting: left out of the run directory name
    assert run_key(["num_threads=1", "method=h1"], 0) == "method=h1,seed=0"


class Slow(pl.Callback):
    """Makes every training step take 0.3 s, so that a 1-second time guard ends the run mid-schedule."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import time

        time.sleep(0.3)


def test_a_run_the_time_guard_stops_says_so_in_its_status_metrics_and_table(make_cfg, tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    cfg = make_cfg("trainer.max_epochs=50", "trainer.max_time=00:00:00:01")
    metrics = _run(cfg, run.path, extra_callbacks=[Slow()])
    line = "stopped by the time guard (trainer.max_time=00:00:00:01) after"
    assert metrics["setup"]["stopped_by"].startswith(line) and metrics["global_step"] < 50 * 3
    assert metrics["setup"]["stopped_by"].endswith("steps; not the recipe's result")
    assert run.read_status()["stopped_by"] == metrics["setup"]["stopped_by"]
    assert line in capsys.readouterr().out.replace("\n", " ")
    # a run that reaches its schedule carries no such line
    full = _run(make_cfg("trainer.max_epochs=1", "trainer.max_time=00:01:00:00"), tmp_path / "full")
    assert full["setup"]["stopped_by"] is None and "stopped_by" not in RunDir(tmp_path / "full").read_status()
