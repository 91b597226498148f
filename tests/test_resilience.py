"""Runs survive faults: SIGKILL anywhere, damaged files, full disks, two copies of one command, signals,
crafted checkpoints, bad input. Each test reproduces one finding of the reliability audit."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import BEST
from posereg.runs import RunDir
from posereg.weights import load_checkpoint

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
# 3 epochs of 6 steps of a tiny net: seconds per run, deterministic on the CPU
BASE = ["debug=tiny", "logger=csv", "backbone.name=resnet10t", "method.head.width=16", "data.input_size=32",
        "data.batch_size=4", "data.eval_batch_size=4", "trainer.max_epochs=3", "trainer.limit_train_batches=6",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.deterministic=true", BEST]


def _env() -> dict[str, str]:
    # the helpers, and this checkout's posereg (not whichever one the environment has installed)
    path = os.pathsep.join([str(TESTS), str(TESTS.parent / "src")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}


def train_until(run: Path, kill_step: int, *overrides: str) -> subprocess.CompletedProcess:
    """Train `run` in a subprocess that SIGKILLs itself at the start of global step `kill_step` (-1: never)."""
    cmd = [sys.executable, "-m", "helpers.train_until", str(run), str(kill_step), *BASE, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(RunDir(run).last_ckpt)["state_dict"]


def _rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv rows with their non-empty cells (column order and empty cells may change on a rewrite)."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted run (with a step checkpoint every 2 steps, as the killed runs use)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    result = train_until(run, -1, "callbacks.step_checkpoint.every_n_train_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill_step,why", [(6, "epoch boundary: last.ckpt from the end of epoch 0"),
                                           (9, "mid-epoch: the step checkpoint at step 8"),
                                           (1, "first epoch, before any checkpoint: starts fresh")])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(straight, tmp_path, kill_step, why):
    run = tmp_path / "run"
    killed = train_until(run, kill_step, "callbacks.step_checkpoint.every_n_train_steps=2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert RunDir(run).read_status()["status"] == "running"  # what a SIGKILL leaves
    rows_before = _rows(run) if kill_step > 6 else []
    again = train_until(run, -1, "callbacks.step_checkpoint.every_n_train_steps=2")
    assert again.returncode == 0, again.stderr[-3000:]
    status = RunDir(run).read_status()
    assert status["status"] == "done" and status["attempts"] == 2
    a, b = weights(straight), weights(run)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{why}: {len(differ)} of {len(a)} tensors differ"
    rows_after = _rows(run)
    assert rows_before or kill_step <= 6  # after a mid-epoch kill, logged rows are there to keep
    assert all(r in rows_after for r in rows_before)  # the history before the kill is kept


@pytest.mark.timeout(300)
def test_rerunning_a_done_run_with_other_settings_keeps_its_config(tmp_path):
    run = tmp_path / "run"
    assert train_until(run, -1).returncode == 0
    saved = (run / ".hydra" / "config.yaml").read_text()
    again = train_until(run, -1, "trainer.precision=bf16-mixed")
    assert again.returncode == 0 and "done already" in again.stdout
    assert (run / ".hydra" / "config.yaml").read_text() == saved


class _Payload:
    """Runs a shell command when unpickled: what a crafted checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "evil": _Payload(marker)}, path)
    return path


@pytest.mark.timeout(300)
def test_crafted_checkpoints_never_run_code(tmp_path):
    from posereg.cli.eval import evaluate
    from posereg.errors import ConfigError

    marker = tmp_path / "pwned"
    evil = _crafted(tmp_path / "evil.ckpt", marker)
    with pytest.raises(ConfigError, match="trust_checkpoints=true"):
        load_checkpoint(evil)
    # init_from=
    result = train_until(tmp_path / "a", -1, f"init_from={evil}")
    assert result.returncode == 2 and "trust_checkpoints=true" in result.stdout
    # a planted last.ckpt (resume) and best.ckpt (eval)
    run = tmp_path / "b"
    assert train_until(run, -1).returncode == 0
    _crafted(run / "checkpoints" / "best.ckpt", marker)
    with pytest.raises(ConfigError, match="trust_checkpoints"):
        evaluate(run, split="val")
    with pytest.raises(ConfigError, match="trust_checkpoints"):
        evaluate(run, split="val", ckpt=str(evil))
    RunDir(run).update_status(status="interrupted")
    _crafted(run / "checkpoints" / "last.ckpt", marker)
    result = train_until(run, -1)
    assert result.returncode == 2 and "trust_checkpoints=true" in result.stdout
    assert not marker.exists()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04garbage", "truncate"])
def test_a_damaged_last_checkpoint_is_set_aside_and_the_run_resumes_from_best(tmp_path, damage):
    run = tmp_path / "run"
    assert train_until(run, 13).returncode == -signal.SIGKILL  # killed in epoch 2: last + best exist
    last = RunDir(run).last_ckpt
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    again = train_until(run, -1)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "moved it aside" in again.stderr and "resuming" in again.stdout and "best.ckpt" in again.stdout
    assert list((run / "checkpoints").glob("last.ckpt.damaged-*"))
    assert RunDir(run).read_status()["status"] == "done"


@pytest.mark.timeout(300)
def test_damaged_status_and_metrics_files_are_recovered(tmp_path):
    run = tmp_path / "run"
    assert train_until(run, -1).returncode == 0
    (run / "status.json").write_text("")
    again = train_until(run, -1)
    assert again.returncode == 0 and "done already" in again.stdout  # inferred from metrics.json
    from posereg.report.collect import load_run

    assert load_run(run).status == "done"
    (run / "metrics.json").write_text("{not json")
    again = train_until(run, -1)  # recomputed by resuming the finished run from last.ckpt
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["final"]["val/pckh@0.5"] >= 0


@pytest.mark.timeout(300)
def test_a_full_disk_leaves_the_previous_checkpoint_and_one_clear_line(tmp_path, monkeypatch):
    import errno

    import posereg.runs.checkpoints as ck
    from conftest import compose_config
    from posereg.recipes.train import train_task

    run = tmp_path / "run"
    calls = {"n": 0}
    real_save = torch.save

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint write finds the disk full half way
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(getattr(f, "name", f)))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ck.torch, "save", save)
    cfg = compose_config([*BASE, "callbacks.step_checkpoint.every_n_train_steps=2"])
    with pytest.raises(SystemExit) as exc:
        train_task(cfg, run_path=run, overrides=[], multirun=False)
    assert exc.value.code == 74
    status = RunDir(run).read_status()
    assert status["status"] == "failed" and "No space left" in status["error"]
    assert calls["n"] == 3 and load_checkpoint(RunDir(run).last_ckpt)["global_step"] == 4  # the previous good one
    assert not list(run.rglob("*.tmp"))


@pytest.mark.timeout(300)
def test_a_second_copy_of_a_running_command_exits_at_once(tmp_path):
    run = tmp_path / "run"
    slow = ["trainer.max_epochs=50", "trainer.limit_train_batches=20"]
    first = subprocess.Popen([sys.executable, "-m", "helpers.train_until", str(run), "-1", *BASE, *slow],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "status.json").exists():
            time.sleep(0.2)
        second = train_until(run, -1, *slow)
        assert second.returncode == 75, second.stdout[-2000:]
        assert f"pid {first.pid}" in second.stdout and "in use" in second.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        rc = first.wait(120)
    assert rc == 143  # SIGTERM: interrupted, resumable, and a non-zero exit a scheduler can read
    status = RunDir(run).read_status()
    assert status["status"] == "interrupted" and status["exit_code"] == 143
    assert not (run / ".lock").exists()


@pytest.mark.timeout(300)
def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": 999999, "since": "earlier"}))
    result = train_until(run, -1)
    assert result.returncode == 0 and "stale lock" in result.stderr


def test_pickle_payload_is_what_the_guard_stops(tmp_path):
    """The crafted file really runs code when loaded without the guard (the test above is not vacuous)."""
    marker = tmp_path / "ran"
    path = _crafted(tmp_path / "c.ckpt", marker)
    with open(path, "rb") as f:
        torch.load(f, weights_only=False)
    assert marker.exists()


@pytest.mark.timeout(300)
def test_ctrl_c_exits_130_and_leaves_a_resumable_run(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers.train_until", str(run), "9", *BASE]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**_env(), "KILL_SIGNAL": "INT"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 130, out[-2000:]
    assert RunDir(run).read_status()["status"] == "interrupted" and RunDir(run).last_ckpt.exists()
    assert "re-run the same command to resume" in out


@pytest.mark.timeout(300)
def test_sigterm_to_the_process_group_with_persistent_loader_workers_interrupts_and_leaves_none(tmp_path):
    # `timeout` and schedulers signal the whole group: the workers must outlive the signal until last.ckpt is
    # written, and must not keep the trainer waiting at its exit (they ignore SIGTERM only while it runs)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers.train_until", str(run), "9", *BASE, "data.num_workers=1",
           "data.persistent_workers=true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**_env(), "KILL_SIGNAL": "TERM", "KILL_GROUP": "1"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out[-3000:]
    assert RunDir(run).read_status()["status"] == "interrupted"
    assert load_checkpoint(RunDir(run).last_ckpt)["global_step"] == 10  # the step the signal came at completes
    with pytest.raises(ProcessLookupError):  # the group (the trainer's session) is empty: no worker survived
        os.killpg(proc.pid, 0)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("override,names", [
    ("data.batch_size=abc", "data.batch_size"),
    ("trainer.max_epochs=-5", "trainer.max_epochs"),
    ("method.head.depth_bins=0", "method.head.depth_bins"),
    ("seed=-1", "seed"),
    ("seed=abc", "seed"),
    ("data.sources.synth.length.train=-3", "length"),
])
def test_bad_input_is_one_line_exit_2_naming_the_setting(tmp_path, override, names):
    extra = ("data=synth3d",) if "depth_bins" in override else ()
    result = train_until(tmp_path / "run", -1, *extra, override)
    assert result.returncode == 2, result.stdout[-1500:] + result.stderr[-1500:]
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and names in errors[0], result.stdout[-1500:]
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(300)
def test_init_from_a_garbage_file_or_another_architecture_fails_loudly(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint")
    result = train_until(tmp_path / "a", -1, f"init_from={garbage}")
    assert result.returncode == 2 and "garbage.ckpt" in result.stdout and "damaged" in result.stdout
    other = tmp_path / "other.ckpt"  # a checkpoint of some other network: no tensor matches by name and shape
    torch.save({"state_dict": {"encoder.conv.weight": torch.zeros(8, 3, 3, 3), "fc.bias": torch.zeros(10)}}, other)
    result = train_until(tmp_path / "b", -1, f"init_from={other}")
    assert result.returncode == 2 and "init_from_min_fraction" in result.stdout
