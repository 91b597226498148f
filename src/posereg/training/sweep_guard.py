"""posereg-sweep's Hydra child outlives its death signal until the cells have saved, then ends its process group.

The cells' side is `posereg.training.watchdog`; this half runs in posereg-train's entry point before anything heavy
is imported (the entry point must answer --help and typos fast), so it uses no torch or Lightning.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from posereg.runs.launch import SWEEP_GRID_ENV, SWEEP_PID_ENV
from posereg.runs.lock import wait_for_grid_unlocked

POLL_S = 0.5
DYING_S = 0.5  # posereg-sweep still alive this long after a SIGTERM: it forwarded it (not its death signal)
SAVE_TIMEOUT_S = 60.0  # how long the guard waits for the cells to save last.ckpt before it kills them anyway


def start_time(pid: int) -> str | None:
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
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def sweep_pid() -> int | None:
    """The pid of the posereg-sweep this process works for, None outside a sweep."""
    value = os.environ.get(SWEEP_PID_ENV, "")
    return int(value) if value.isdigit() else None


def sweep_grid() -> Path:
    """The grid folder of the posereg-sweep this process works for (the working directory outside a sweep)."""
    return Path(os.environ.get(SWEEP_GRID_ENV, "."))


def wait_for_cells_to_save(grid: Path) -> None:
    """Return once no cell of `grid` holds its lock (each has recorded its end), or after SAVE_TIMEOUT_S."""
    wait_for_grid_unlocked(grid, SAVE_TIMEOUT_S, POLL_S)


def sweep_child_guard() -> None:
    """In posereg-sweep's Hydra child: outlive its death signal until the cells have saved, then end the group."""
    pid = sweep_pid()
    if pid is None or os.getppid() != pid:
        return  # not the Hydra child of a posereg-sweep (a plain posereg-train, or a launcher's worker)
    started, grid = start_time(pid), sweep_grid()

    def on_sigterm(signum: int, frame: Any) -> None:
        # the death signal is sent while posereg-sweep is still exiting (not yet a zombie): give it a moment
        deadline = time.monotonic() + DYING_S
        while alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.01)
        if alive(pid, started):  # posereg-sweep itself forwards a SIGTERM: end as before (the default action)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        # else: the death signal; the guard thread ends the group once the cells have saved

    def end_group() -> None:
        time.sleep(2 * POLL_S)  # the cells' watchdogs notice too and interrupt their cells
        wait_for_cells_to_save(grid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(0), signal.SIGKILL)

    def guard() -> None:
        while alive(pid, started):
            time.sleep(POLL_S)
        # not a daemon: should the launcher give up on its dead workers and return, the process still waits
        threading.Thread(target=end_group, name="posereg-sweep-end").start()

    signal.signal(signal.SIGTERM, on_sigterm)
    threading.Thread(target=guard, name="posereg-sweep-guard", daemon=True).start()
