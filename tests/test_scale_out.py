"""Training under DDP (2 gloo processes on the CPU): only rank 0 owns the run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posereg.runs import RunDir

pytestmark = pytest.mark.slow

TINY_DDP = ["debug=tiny", "trainer=ddp_cpu", "logger=csv", "backbone.name=resnet10t", "method.head.width=16",
            "data.input_size=32", "data.batch_size=2", "data.eval_batch_size=4", "trainer.max_epochs=2",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


def _env() -> dict[str, str]:
    """One thread per rank: two ranks share the two cores."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
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
    assert run.last_ckpt.is_file() and run.best_ckpt.is_file()
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
