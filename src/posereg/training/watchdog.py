"""Whatever posereg-sweep starts ends with it, SIGKILL included: a watchdog in each cell, a guard in its Hydra child.

posereg-sweep passes its pid (SWEEP_PID_ENV) and grid folder (SWEEP_GRID_ENV) to its Hydra child, which leads
a process group of its own and gets SIGTERM when posereg-sweep dies (PR_SET_PDEATHSIG, `posereg.grid.plan`).
The cells may run in the launcher's workers (joblib's loky processes: the child's children), which no death
signal reaches; so

* `cell_watchdog` (around one cell, in whichever process runs it) polls the sweep's pid; once it is gone the cell
  sends itself SIGTERM: during fit Lightning handles it (last.ckpt, `interrupted`, exit code 143), before or
  after fit the watchdog's own handler raises Lightning's SIGTERMException, which the run lifecycle records the
  same way; when the cell has recorded its end, its process exits (a loky worker would take the next cell), but
  only once no other cell of the grid holds its lock: loky takes a worker's exit for a crash and SIGKILLs the
  other workers, which may still be saving;
* `posereg.training.sweep_guard` (in the Hydra child, which must start light) ignores the death signal,
  waits until no cell of the grid holds its lock (each has saved its last.ckpt), then kills its whole process
  group: idle workers and joblib's resource tracker, which outlive the Hydra process otherwise (parent 1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException

from posereg.training.sweep_guard import POLL_S, alive, start_time, sweep_grid, sweep_pid, wait_for_cells_to_save

EXIT_SIGTERM = 143


class FitPhase(pl.Callback):
    """Tells the watchdog whether Lightning's training loop runs (it then handles SIGTERM itself)."""

    def __init__(self, watchdog: CellWatchdog) -> None:
        self.watchdog = watchdog

    # on_train_start/end, not on_fit_start/end: Lightning's handler is installed after on_fit_start and removed
    # before on_fit_end, and a SIGTERM in those gaps would be ignored by both handlers and lost
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watchdog.fitting = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watchdog.fitting = False
        if trainer.received_sigterm:  # it came after the loop's last check: Lightning would finish the run
            self.watchdog.raise_once()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.watchdog.fitting = False


class CellWatchdog:
    """The watchdog of one cell (see the module docstring); `callbacks()` go to the cell's Trainer."""

    def __init__(self, pid: int) -> None:
        self.pid, self.started = pid, start_time(pid)
        self.fitting = False
        self.sweep_gone = threading.Event()
        self._stop = threading.Event()
        self._raised = False

    def callbacks(self) -> list[pl.Callback]:
        return [FitPhase(self)]

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            if not alive(self.pid, self.started):
                self.sweep_gone.set()
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def raise_once(self) -> None:
        """Raise Lightning's SIGTERMException, which the run lifecycle records `interrupted` (once per cell)."""
        if not self._raised:
            self._raised = True
            raise SIGTERMException

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # Lightning calls this handler too while it trains (it chains the one it found): it stops the loop itself
        if not self.fitting:
            self.raise_once()

    @contextlib.contextmanager
    def watching(self) -> Iterator[CellWatchdog]:
        """Watch while the block (one cell) runs; exit the process after it when the sweep is gone."""
        handler = None
        if threading.current_thread() is threading.main_thread():
            handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        thread = threading.Thread(target=self._watch, name="posereg-sweep-watchdog", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if handler is not None:
                signal.signal(signal.SIGTERM, handler)
            if self.sweep_gone.is_set():  # the cell recorded `interrupted`; this worker must not take the next cell
                end_worker()


def end_worker() -> None:
    """Exit this process once the grid's other cells have saved (a loky worker's exit gets its siblings killed)."""
    wait_for_cells_to_save(sweep_grid())
    os._exit(EXIT_SIGTERM)


@contextlib.contextmanager
def cell_watchdog() -> Iterator[CellWatchdog | None]:
    """A CellWatchdog around the block when this process works for a posereg-sweep, else nothing."""
    pid = sweep_pid()
    if pid is None:
        yield None
        return
    watchdog = CellWatchdog(pid)
    if not alive(pid, watchdog.started):  # the sweep died before this cell began: leave its run untouched
        end_worker()
    with watchdog.watching():
        yield watchdog
