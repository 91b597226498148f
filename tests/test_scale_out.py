"""Training under DDP (2 gloo processes on the CPU): only rank 0 owns the run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from posereg.paths import real_slices_dir
from posereg.runs import RunDir

pytestmark = pytest.mark.slow

TINY_DDP = ["debug=tiny", "trainer=ddp_cpu", "logger=csv", "backbone.name=resnet10t", "method.head.width=16",
            "data.input_size=32", "data.batch_size=2", "data.eval_batch_size=4", "trainer.max_epochs=2",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


# the helpers, and this checkout's posereg (not whichever one the environment has installed)
HELPERS_PATH = os.pathsep.join([str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")])


def _env() -> dict[str, str]:
    """One thread per rank: two ranks share the two cores. No inherited W&B service: a test process that used W&B
    in-process exports WANDB_SERVICE, and a job killed without finishing would leave its run id held there."""
    drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "WANDB_SERVICE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train(runs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posereg.train", *TINY_DDP, f"paths.runs_dir={runs}", *extra],
                          capture_output=True, text=True, timeout=600, env=_env())


@pytest.mark.timeout(700)
def test_ddp_cpu_run_has_one_directory_one_attempt_and_is_skipped_when_done(tmp_path):
    runs = tmp_path / "runs"
    first = _train(runs)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    dirs = [p for p in (runs / "default").iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs  # the second rank did not create a directory of its own
    run = RunDir(dirs[0])
    status = run.read_status()
    assert status["status"] == "done" and status["attempts"] == 1 and status["exit_code"] == 0
    assert run.last_ckpt.is_file() and not run.best_ckpt.exists()  # debug=tiny: last.ckpt only
    assert first.stdout.count("┃ metric") == 1  # one final table (rank 0)
    metrics = json.loads(run.metrics_file.read_text())
    assert {"val/pckh@0.5", "val/auc"} <= set(metrics["final"]) and "test/pckh@0.5" in metrics["test"]
    assert metrics["setup"]["device"].endswith("x2")
    rows = (run.path / "csv" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) > 2 and rows[0].startswith("epoch") or "epoch" in rows[0]
    assert not list(run.path.rglob("*.tmp")) and not (run.path / ".lock").exists()

    again = _train(runs)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done already" in again.stdout
    assert run.read_status()["attempts"] == 1


def _eval(run: Path, *overrides: str) -> dict:
    """posereg-eval in a subprocess; the metrics it wrote."""
    cmd = [sys.executable, "-m", "posereg.cli.eval", f"run={run}", "trainer.limit_val_batches=null", *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("┃ metric") == 1  # one table, from rank 0
    return json.loads((run / "eval_val.json").read_text())["metrics"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("data,metric", [
    (["data=synth2d", "data.sources.synth.length.val=11"], "val/pckh@0.5"),
    (["data=synth3d", "data.sources.synth.length.val=11"], "val/mpjpe"),
    (["experiment=slice_coco", f"data.root={real_slices_dir() / 'coco'}"], "val/coco_ap"),
])
def test_ddp_evaluation_counts_every_sample_exactly_once(tmp_path, data, metric):
    if "coco" in data[0] and not (real_slices_dir() / "coco").is_dir():
        pytest.skip("the real COCO slice is not available")
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "posereg.train", *data, "debug=tiny", "logger=csv", "backbone.name=resnet10t",
           "method.head.width=16", "trainer.max_epochs=1", f"paths.runs_dir={runs}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = [p for p in runs.glob("*/*") if p.is_dir()]
    single = _eval(run)
    both = _eval(run, "trainer=ddp_cpu")
    assert metric in single
    for key, value in single.items():  # an odd sample count: one rank gets one more, nothing is padded
        assert both[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


@pytest.mark.timeout(900)
def test_torchrun_two_ranks_one_run_directory_one_wandb_run_same_metrics_keys(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    env = {**_env(), "WANDB_MODE": "offline"}
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "-m", "posereg.train",
           *TINY_DDP, "logger=wandb", f"paths.runs_dir={runs}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=800, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (run,) = [RunDir(p) for p in (runs / "default").iterdir() if p.is_dir()]
    status = run.read_status()
    assert status["status"] == "done" and status["attempts"] == 1 and status["launch"].startswith("torchrun:")
    assert result.stdout.count("┃ metric") == 1
    offline = list((run.path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith(run.wandb_id_file.read_text().strip())
    single = _train(tmp_path / "single", "trainer=cpu")
    assert single.returncode == 0, single.stderr[-3000:]
    (one,) = [RunDir(p) for p in (tmp_path / "single" / "default").iterdir() if p.is_dir()]
    a, b = json.loads(run.metrics_file.read_text()), json.loads(one.metrics_file.read_text())
    for section in ("final", "best", "test"):
        assert set(a[section]) == set(b[section]), section


def _ddp_until(run: Path, kill_step: int) -> subprocess.CompletedProcess:
    """Two-rank training through the test helper, killing every rank at `kill_step` (-1: never)."""
    env = {**_env(), "PYTHONPATH": HELPERS_PATH, "KILL_GROUP": "1"}
    cmd = [sys.executable, "-m", "helpers.train_until", str(run), str(kill_step), *TINY_DDP, "trainer.max_epochs=3",
           "trainer.limit_train_batches=4", "trainer.deterministic=true",
           "callbacks.step_checkpoint.every_n_train_steps=1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, start_new_session=True)


@pytest.mark.timeout(900)
def test_ddp_job_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    from posereg.weights import load_checkpoint

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _ddp_until(straight, -1).returncode == 0
    first = _ddp_until(killed, 5)  # mid-epoch 1 (2 steps per epoch per rank with 4 batches over 2 ranks)
    assert first.returncode == -9, first.stderr[-2000:]
    again = _ddp_until(killed, -1)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert RunDir(killed).read_status()["attempts"] == 2
    a = load_checkpoint(RunDir(straight).last_ckpt)["state_dict"]
    b = load_checkpoint(RunDir(killed).last_ckpt)["state_dict"]
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ"


@pytest.mark.timeout(900)
def test_slurm_warning_signal_checkpoints_requeues_and_the_requeued_job_resumes(tmp_path):
    bin_dir, record = tmp_path / "bin", tmp_path / "scontrol.log"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # stand-in: records how it was called
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    scontrol.chmod(0o755)
    env = {**_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": HELPERS_PATH,
           "WANDB_MODE": "offline", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "posereg", "SLURM_NTASKS": "1",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NNODES": "1",
           "SLURM_NODELIST": "localhost"}
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers.train_until", str(run), "-1", "debug=tiny", "logger=wandb",
           "backbone.name=resnet10t", "method.head.width=16", "data.input_size=32", "trainer.max_epochs=3",
           "trainer.limit_train_batches=25"]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "csv" / "metrics.csv").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    job.send_signal(signal.SIGUSR2)  # what `sbatch --signal=B:USR2@120` sends before the time limit
    out, _ = job.communicate(timeout=300)
    assert job.returncode == 128 + signal.SIGUSR2, out[-2000:]
    status = RunDir(run).read_status()
    assert status["status"] == "interrupted" and status["requeue"] == {"job": "4242", "scontrol_exit_code": 0}
    assert record.read_text().split() == ["requeue", "4242"]
    assert RunDir(run).last_ckpt.is_file()
    wandb_id = RunDir(run).wandb_id_file.read_text().strip()
    # the requeued job: same command, same job id, possibly another node
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    status = RunDir(run).read_status()
    assert status["status"] == "done" and status["attempts"] == 2 and status["resumed_from"].endswith("last.ckpt")
    assert RunDir(run).wandb_id_file.read_text().strip() == wandb_id
    assert all(p.name.endswith(wandb_id) for p in (run / "wandb").glob("offline-run-*"))


@pytest.mark.timeout(900)
def test_a_grid_runs_end_to_end_through_submitit_local(tmp_path):
    import yaml

    template = tmp_path / "tiny_submitit.yaml"
    template.write_text(yaml.safe_dump({
        "name": "tiny_submitit", "title": "tiny grid", "grid": {"method": "i1,r1", "seed": "0"},
        "fixed": {"debug": "tiny", "backbone.name": "resnet10t", "method.head.width": 16, "data.input_size": 32,
                  "trainer.max_epochs": 1},
        "table": {"rows": {"axis": "method"}, "metrics": [{"name": "val/pckh@0.5", "label": "PCKh@0.5"}]}}))
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "posereg.cli.sweep", str(template), f"paths.runs_dir={runs}", "logger=csv",
           "test_after_fit=false", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=800, env=_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    cells = [RunDir(p) for p in (runs / "tiny_submitit").iterdir() if (p / "status.json").exists()]
    assert len(cells) == 2 and all(c.read_status()["status"] == "done" for c in cells)
    assert "2/2 runs done" in (runs / "tiny_submitit" / "report" / "report.md").read_text()
