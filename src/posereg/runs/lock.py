"""One process trains a run directory at a time: a lock file with its owner (host, pid, launch).

The lock is an `fcntl.flock` on `<run>/.lock`, which the kernel releases when the owner dies (even by
SIGKILL), plus the owner's identity written inside for messages. A second copy of the same command finds
the flock held and exits at once (EXIT_IN_USE) naming the owner. A leftover file whose owner is gone is
taken over with a warning: on the same host when its pid no longer runs, from another host only when it
belongs to the same scheduler job (a SLURM requeue on another node).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

EXIT_IN_USE = 75  # EX_TEMPFAIL: try again later


class RunInUseError(RuntimeError):
    """The run directory is being trained by another process."""


def _owner_text(owner: dict[str, Any]) -> str:
    return f"host {owner.get('host', '?')}, pid {owner.get('pid', '?')} (since {owner.get('since', '?')})"


class RunLock:
    """The lock of one run directory; use as a context manager or acquire() / release()."""

    def __init__(self, run_path: Path, job: str | None, since: str):
        self.path = Path(run_path) / ".lock"
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "job": job, "since": since}
        self._fd: int | None = None

    def _previous_owner(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        """Take the lock or raise RunInUseError naming its owner."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunInUseError(f"{self.path.parent} is in use by {_owner_text(self._previous_owner())}: "
                                    "wait for it to finish, or stop that process") from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break  # still the file at the path: a releasing owner may have unlinked the one we opened
            except FileNotFoundError:
                pass
            os.close(fd)
        previous = self._previous_owner()
        if previous:
            self._check_stale(previous, fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.owner).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _check_stale(self, previous: dict[str, Any], fd: int) -> None:
        """Take over a leftover lock whose owner is gone, or refuse one that may be alive on another host."""
        # The flock was free, so on this host the previous owner is gone (killed, or its pid reused).
        same_host = previous.get("host") == self.owner["host"]
        same_job = bool(previous.get("job")) and previous.get("job") == self.owner["job"]
        if not same_host and not same_job:
            os.close(fd)
            raise RunInUseError(f"{self.path.parent} was locked by {_owner_text(previous)} on another host, which "
                                f"this machine cannot check: if that job has ended, delete {self.path} and re-run")
        warnings.warn(f"taking over the stale lock of {_owner_text(previous)} on {self.path.parent}", stacklevel=3)

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_held(run_path: Path) -> bool:
    """Whether a live process holds the lock of `run_path` (a leftover `.lock` of a dead owner is not held)."""
    try:
        fd = os.open(Path(run_path) / ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a shared lock taken just now
    return False


def wait_for_grid_unlocked(grid_dir: Path, timeout_s: float, poll_s: float = 0.5) -> bool:
    """Wait until no run directory in `grid_dir` is locked (each cell has recorded its end); False after
    `timeout_s` with a lock still held."""
    deadline = time.monotonic() + timeout_s
    while any(is_held(lock.parent) for lock in Path(grid_dir).glob("*/.lock")):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
