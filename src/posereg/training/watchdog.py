"""Whatever posereg-sweep starts ends with it, SIGKILL included: a watchdog in each cell, a guard in its Hydra child.

posereg-sweep passes its pid (SWEEP_PID_ENV) and grid folder (SWEEP_GRID_ENV) to its Hydra child, which leads
a process group of its own and gets SIGTERM when posereg-sweep dies (PR_SET_PDEATHSIG, `posereg.grid.plan`).
The cells may run in the launcher's workers (joblib's loky processes: the child's children), which no death
signal reaches; so

* `cell_watchdog` (around one cell, in whichever process runs it) polls the sweep's pid; once it is gone the cell
  sends itself SIGTERM: during fit Lightning handles it (last.ckpt, `interrupted`, exit code 143), before or
  after fit the watchdog's own handler raises Lightning's SIGTERMException, which the run lifecycle records the
  same way; when the cell has recorded its end, its process exits (a loky worker would take the next cell);
* `sweep_child_guard` (in the Hydra child) ignores the death signal, waits until no cell of the grid holds its
  lock (each has saved its last.ckpt), then kills its whole process group: idle workers and joblib's resource
  tracker, which outlive the Hydra process otherwise and stay with parent 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException

from posereg.runs.launch import SWEEP_GRID_ENV, SWEEP_PID_ENV
from posereg.runs.lock import is_held

POLL_S = 0.5
SAVE_TIMEOUT_S = 60.0  # how long the guard waits for the cells to save last.ckpt before it kills them anyway
EXIT_SIGTERM = 143


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def alive(pid: int, started: str | None) -> bool:
    """Whether process `pid` still runs and is the one that started at `started` (not a reused pid)."""
    if not Path("/proc").is_dir():  # no procfs: ask the kernel (a zombie counts as alive here)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = _start_time(pid)
    return now is not None and (started is None or now == started)


def sweep_pid() -> int | None:
    """The pid of the posereg-sweep this process works for, None outside a sweep."""
    value = os.environ.get(SWEEP_PID_ENV, "")
    return int(value) if value.isdigit() else None


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
        self.pid, self.started = pid, _start_time(pid)
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
    with CellWatchdog(pid).watching() as watchdog:
        yield watchdog


def sweep_child_guard() -> None:
    """In posereg-sweep's Hydra child: outlive its death signal until the cells have saved, then end the group."""
    pid = sweep_pid()
    if pid is None or os.getppid() != pid:
        return  # not the Hydra child of a posereg-sweep (a plain posereg-train, or a launcher's worker)
    started, grid = _start_time(pid), Path(os.environ.get(SWEEP_GRID_ENV, "."))

    def on_sigterm(signum: int, frame: Any) -> None:
        if alive(pid, started):  # posereg-sweep itself forwards a SIGTERM: end as before (the default action)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        # else: the death signal; the guard thread ends the group once the cells have saved

    def end_group() -> None:
        deadline = time.monotonic() + SAVE_TIMEOUT_S
        time.sleep(2 * POLL_S)  # the cells' watchdogs notice too and interrupt their cells
        while time.monotonic() < deadline and any(is_held(lock.parent) for lock in grid.glob("*/.lock")):
            time.sleep(POLL_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(0), signal.SIGKILL)

    def guard() -> None:
        while alive(pid, started):
            time.sleep(POLL_S)
        # not a daemon: should the launcher give up on its dead workers and return, the process still waits
        threading.Thread(target=end_group, name="posereg-sweep-end").start()

    signal.signal(signal.SIGTERM, on_sigterm)
    threading.Thread(target=guard, name="posereg-sweep-guard", daemon=True).start()
