"""Whatever posereg-sweep starts ends with it, SIGKILL included: a watchdog in each cell, a guard in its Hydra child.

posereg-sweep passes its pid (SWEEP_PID_ENV) and grid folder (SWEEP_GRID_ENV) to its Hydra child, which leads
a process group of its own and gets SIGTERM when posereg-sweep dies (PR_SET_PDEATHSIG, `posereg.grid.plan`).
The cells may run in the launcher's workers (joblib's loky processes: the child's children), which no death
signal reaches; so

* `cell_watchdog` (around one cell, in whichever process runs it) polls the sweep's pid; once it is gone the cell
  sends itself SIGTERM: during fit Lightning handles it (last.ckpt, `interrupted`, exit code 143), before or
  after fit the watchdog's own handler raises Lightning's SIGTERMException, which the run lifecycle records the
  same way; when the cell has recorded its end, its process exits (a loky worker would take the next cell);
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

from posereg.training.sweep_guard import POLL_S, alive, start_time, sweep_pid

EXIT_SIGTERM = 143


class FitPhase(pl.Callback):
    """Tells the watchdog whether Lightning is fitting (it then handles SIGTERM itself)."""

    def __init__(self, watchdog: CellWatchdog) -> None:
        self.watchdog = watchdog

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watchdog.fitting = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watchdog.fitting = False

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

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # Lightning calls this handler too while it fits (it chains the one it found): it stops the fit itself
        if self.fitting or self._raised:
            return
        self._raised = True
        raise SIGTERMException

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
            if self.sweep_gone.is_set():
                os._exit(EXIT_SIGTERM)  # the cell recorded `interrupted`; this worker must not take the next cell


@contextlib.contextmanager
def cell_watchdog() -> Iterator[CellWatchdog | None]:
    """A CellWatchdog around the block when this process works for a posereg-sweep, else nothing."""
    pid = sweep_pid()
    if pid is None:
        yield None
        return
    watchdog = CellWatchdog(pid)
    if not alive(pid, watchdog.started):  # the sweep died before this cell began: leave its run untouched
        os._exit(EXIT_SIGTERM)
    with watchdog.watching():
        yield watchdog
