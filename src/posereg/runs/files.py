"""One run directory: its files, status.json and metrics.json, and what a damaged file means."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posereg.jsonio import DamagedFileError, read_json, write_json
from posereg.paths import REPO_ROOT

STATUSES = ("pending", "running", "done", "failed", "interrupted")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """$POSEREG_GIT_COMMIT when set, else the checkout's commit hash, with '+dirty' when it has local changes."""
    # a launcher that copies the checkout elsewhere (scripts/gpu_grids.sh on a lent GPU machine) knows the commit
    # better than the copy: there .git was missing, or was an older snapshot than the files beside it
    stated = os.environ.get("POSEREG_GIT_COMMIT")
    if stated:
        return stated
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) or None


def set_aside(path: Path, why: str) -> Path:
    """Rename a damaged file to `<name>.damaged-<time>` (kept for inspection) and warn; returns the new path."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, target)
    warnings.warn(f"{why}: moved it aside to {target.name}", stacklevel=2)
    return target


@dataclass
class RunDir:
    """One run directory and the files in it."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoint_dir / "last.ckpt"

    @property
    def best_ckpt(self) -> Path:
        return self.checkpoint_dir / "best.ckpt"

    @property
    def config_file(self) -> Path:
        return self.path / ".hydra" / "config.yaml"

    @property
    def overrides_file(self) -> Path:
        return self.path / ".hydra" / "overrides.yaml"

    @property
    def wandb_id_file(self) -> Path:
        return self.path / "wandb_id.txt"

    def read_status(self, repair: bool = False) -> dict:
        """The status record; 'pending' for a new directory. A damaged file raises, or with `repair` is set
        aside and replaced by what the other files show (see `infer_status`)."""
        try:
            status = read_json(self.status_file)
        except DamagedFileError:
            if not repair:
                raise
            set_aside(self.status_file, f"{self.status_file} is damaged")
            status = self.infer_status()
            write_json(self.status_file, status)
        return status if status is not None else {"status": "pending", "attempts": 0}

    def infer_status(self) -> dict:
        """The status the files imply when status.json is lost: done (valid metrics.json), interrupted
        (a checkpoint to resume from) or pending."""
        try:
            metrics = read_json(self.metrics_file)
        except DamagedFileError:
            metrics = None
        if metrics and metrics.get("final") is not None:
            state = "done"
        elif self.last_ckpt.exists() or self.best_ckpt.exists():
            state = "interrupted"
        else:
            state = "pending"
        return {"status": state, "attempts": 0, "error": "status.json was damaged; status inferred from the files"}

    def update_status(self, **fields: Any) -> dict:
        """Merge fields into status.json and write it atomically."""
        status = self.read_status(repair=True)
        status.update(fields)
        write_json(self.status_file, status)
        return status

    def mark_running(self, experiment: str, overrides: list[str], resumed_from: str | None, launch: str) -> dict:
        """Record the start of an attempt (a launch of the command)."""
        previous = self.read_status(repair=True)
        return self.update_status(
            status="running",
            started_at=now(),
            ended_at=None,
            duration_s=None,
            error=None,
            failed_step=None,
            git_commit=git_commit(),
            host=socket.gethostname(),
            pid=os.getpid(),
            launch=launch,
            experiment=experiment,
            run_key=self.path.name,
            overrides=list(overrides),
            attempts=int(previous.get("attempts", 0)) + 1,
            resumed_from=resumed_from,
        )

    def mark_finished(self, status: str, error: str | None = None, failed_step: int | None = None,
                      exit_code: int | None = None, **extra: Any) -> dict:
        """Record the end of an attempt with its outcome (and extra fields, e.g. a requeue)."""
        assert status in STATUSES, status
        current = self.read_status(repair=True)
        ended = _dt.datetime.now(_dt.timezone.utc)
        duration = None
        if current.get("started_at"):
            duration = round((ended - _dt.datetime.fromisoformat(current["started_at"])).total_seconds(), 1)
        return self.update_status(status=status, ended_at=ended.isoformat(timespec="seconds"), duration_s=duration,
                                  error=error, failed_step=failed_step, exit_code=exit_code, **extra)

    def read_metrics(self) -> dict:
        """metrics.json, or an empty dict (DamagedFileError when it cannot be parsed)."""
        return read_json(self.metrics_file) or {}

    def write_metrics(self, metrics: dict) -> None:
        """Write metrics.json atomically."""
        write_json(self.metrics_file, metrics)
