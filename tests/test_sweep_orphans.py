"""kill -9 of posereg-sweep leaves no process behind: its joblib workers interrupt their cells (last.ckpt,
`interrupted`) and exit, its Hydra child ends the idle workers and the resource tracker; a re-run finishes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.utilities.exceptions import SIGTERMException

from posereg.runs.launch import SWEEP_GRID_ENV, SWEEP_PID_ENV
from posereg.runs.lock import RunLock, is_held
from posereg.training.watchdog import EXIT_SIGTERM, CellWatchdog
from test_sweep import TINY, env, statuses, sweep_cmd

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[1] / "src"
BATCHES = 150  # per epoch: the second epoch outlasts the watchdog's notice (a cell that finished first says done)


def checkout_env() -> dict[str, str]:
    """The sweep tests' environment, importing this checkout's posereg (the cells run in other folders)."""
    return {**env(), "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def session_processes(sid: int) -> list[str]:
    """`pid comm state` of the live processes of session `sid` (zombies have ended: only a reap is missing)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        try:
            comm = stat.with_name("cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
        except OSError:
            comm = text[text.index("(") + 1:text.rindex(")")]
        state, _ppid, _pgrp, session = text.rsplit(")", 1)[1].split()[:4]
        if int(session) == sid and state not in ("Z", "X"):
            found.append(f"{stat.parent.name} {comm} {state}")
    return found


@pytest.mark.timeout(600)
def test_kill_9_of_a_joblib_sweep_leaves_no_process_and_a_rerun_finishes(tmp_path: Path) -> None:
    fixed = {**TINY, "backbone.name": "test_efficientnet", "method.head.width": 16, "trainer.max_epochs": 2,
             "trainer.limit_train_batches": BATCHES}
    template = tmp_path / "tiny_orphans.yaml"
    template.write_text(yaml.safe_dump({"name": "tiny_orphans", "title": "tiny grid", "grid": {"seed": "0,1,2"},
                                        "fixed": fixed, "table": {"rows": {"axis": "seed"}, "metrics": [
                                            {"name": "val/pckh@0.5", "label": "PCKh@0.5"}]}}))
    runs = tmp_path / "runs"
    grid = runs / "tiny_orphans"
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = subprocess.Popen(sweep_cmd(template, runs, *launcher), cwd=tmp_path, env=checkout_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not list(grid.glob("*/checkpoints/last.ckpt")):
            time.sleep(0.2)  # a cell is past its first epoch: it is training
        assert proc.poll() is None, "the sweep ended before a cell had trained an epoch"
        # the cells in fit (past their first epoch: a last.ckpt) are the ones the watchdog must interrupt cleanly; a
        # cell still in its set-up may die unrecorded, and the re-run below must still finish it
        running = {k for k, s in statuses(grid).items()
                   if s["status"] == "running" and (grid / k / "checkpoints" / "last.ckpt").is_file()}
        assert running
        os.kill(proc.pid, signal.SIGKILL)  # the sweep's own pid only: its children are left to end themselves
        proc.wait()
        gone_by = time.time() + 30
        while time.time() < gone_by and session_processes(proc.pid):
            time.sleep(0.5)
        assert session_processes(proc.pid) == []
    finally:  # whatever is left would train on: end it (by pid, only this test's processes)
        for line in session_processes(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    after = statuses(grid)
    for key in running:
        assert after[key]["status"] == "interrupted" and after[key]["exit_code"] == 143, after[key]
        assert (grid / key / "checkpoints" / "last.ckpt").is_file()
    # no cell holds its lock (a lock file left by a process killed mid-way is stale: flock died with it)
    assert not [lock for lock in grid.glob("*/.lock") if is_held(lock.parent)]
    # a cell not reached yet has no record; one killed in its set-up may still say running (no lock held: stale)

    result = subprocess.run(sweep_cmd(template, runs, *launcher), cwd=tmp_path, env=checkout_env(), capture_output=True,
                            text=True, timeout=500)
    assert result.returncode == 0, result.stderr[-3000:]
    final = statuses(grid)
    assert len(final) == 3 and all(s["status"] == "done" for s in final.values()), final
    for key in running:  # resumed from the interrupted cell's last.ckpt, not started again
        assert final[key]["attempts"] == 2 and final[key]["resumed_from"].endswith("last.ckpt")
        metrics = json.loads((grid / key / "metrics.json").read_text())
        assert metrics["global_step"] == 2 * BATCHES


def fake_cell(grid: Path, sweep_pid: int, body: str) -> subprocess.Popen:
    """A process that runs `body` as one cell of posereg-sweep `sweep_pid` (its watchdog around it)."""
    script = f"import time\nfrom posereg.training.watchdog import cell_watchdog\nwith cell_watchdog():\n    {body}\n"
    env = {**checkout_env(), SWEEP_PID_ENV: str(sweep_pid), SWEEP_GRID_ENV: str(grid)}
    return subprocess.Popen([sys.executable, "-c", script], env=env)


@pytest.mark.parametrize("dies", ["before the cell", "during the cell"])
def test_a_cell_whose_sweep_died_exits_only_once_the_other_cells_have_saved(tmp_path: Path, dies: str) -> None:
    # loky takes a worker's exit for a crash and SIGKILLs the other workers, which may still be saving
    grid = tmp_path / "grid"
    other = RunLock(grid / "other_cell", job=None, since="now")
    (grid / "other_cell").mkdir(parents=True)
    other.acquire()
    sweep = subprocess.Popen(["sleep", "600"])
    try:
        if dies == "before the cell":
            sweep.kill()
            sweep.wait()
        cell = fake_cell(grid, sweep.pid, "time.sleep(120)")
        time.sleep(3)  # the cell is in its block
        if dies == "during the cell":
            sweep.kill()
            sweep.wait()
        time.sleep(3)  # its watchdog has noticed (it polls every 0.5 s)
        assert cell.poll() is None, "the cell exited while another cell still held its lock"
        other.release()
        assert cell.wait(timeout=30) == EXIT_SIGTERM
    finally:
        sweep.kill()
        other.release()
        with contextlib.suppress(NameError, ProcessLookupError):
            cell.kill()


class _Tiny(pl.LightningModule):
    """One linear layer on random numbers: a Trainer with something to fit."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=4)


class _SigtermAfterTheLastCheck(pl.Callback):
    """A SIGTERM that Lightning's handler noted after its loop's last check (the run would otherwise finish)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer._signal_connector.received_sigterm = True


def test_a_sigterm_after_the_training_loops_last_check_still_interrupts_the_cell() -> None:
    watchdog = CellWatchdog(os.getpid())
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[_SigtermAfterTheLastCheck(), *watchdog.callbacks()])
    with pytest.raises(SIGTERMException):
        trainer.fit(_Tiny())
    assert not watchdog.fitting
