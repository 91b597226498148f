"""Run directories: deterministic keys, status.json, metrics.json and what resuming should do."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posereg.paths import REPO_ROOT

STATUSES = ("pending", "running", "done", "failed", "interrupted")
MAX_KEY_LENGTH = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9=,._+@:\-\[\]]")


def run_key(override_dirname: str, seed: int | str) -> str:
    """Directory name of a run: its defining overrides (sorted by Hydra) plus the seed."""
    parts = [p for p in str(override_dirname or "").split(",") if p]
    key = ",".join([*parts, f"seed={seed}"])
    key = _UNSAFE.sub("_", key.replace("/", "_"))
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        key = f"{key[: MAX_KEY_LENGTH - 11]}~{digest}"
    return key


_FRESH_DIRS: dict[tuple[str, str, str, str], str] = {}


def run_dir(runs_dir: str, experiment: str, override_dirname: str, seed: int | str, resume: Any) -> str:
    """Run directory for the current command; with resume=false, the first unused '-vN' sibling."""
    base = Path(str(runs_dir)) / str(experiment) / run_key(override_dirname, seed)
    if str(resume).lower() not in ("false", "0", "no"):
        return str(base)
    memo = (str(runs_dir), str(experiment), str(override_dirname), str(seed))
    if memo not in _FRESH_DIRS:  # Hydra resolves the run dir more than once per process
        candidate, version = base, 1
        while candidate.exists() and any(candidate.iterdir()):
            version += 1
            candidate = base.with_name(f"{base.name}-v{version}")
        _FRESH_DIRS[memo] = str(candidate)
    return _FRESH_DIRS[memo]


def pick(flag: Any, if_true: Any, if_false: Any) -> Any:
    """``${pick:flag,a,b}``: a when flag is true (bool or 'true'/'1'/'yes'), else b (e.g. proxy metric names)."""
    return if_true if str(flag).strip().lower() in ("true", "1", "yes") else if_false


def register_resolvers() -> None:
    """Register the OmegaConf resolvers the Hydra config uses (run directories, ``pick``)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("pick"):
        OmegaConf.register_new_resolver("pick", pick)

    if not OmegaConf.has_resolver("run_key"):
        OmegaConf.register_new_resolver("run_key", run_key)
    if not OmegaConf.has_resolver("run_dir"):
        OmegaConf.register_new_resolver("run_dir", run_dir)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """Commit hash of the posereg checkout, with '+dirty' when it has local changes."""
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


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)  # atomic: a report reading mid-write never sees half a file


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


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
    def wandb_id_file(self) -> Path:
        return self.path / "wandb_id.txt"

    def read_status(self) -> dict:
        """The status record, or a 'pending' one for a new directory."""
        if not self.status_file.exists():
            return {"status": "pending", "attempts": 0}
        return json.loads(self.status_file.read_text())

    def update_status(self, **fields: Any) -> dict:
        """Merge fields into status.json and write it atomically."""
        status = self.read_status()
        status.update(fields)
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.status_file, status)
        return status

    def mark_running(self, experiment: str, overrides: list[str], resumed_from: str | None) -> dict:
        """Record the start of an attempt."""
        previous = self.read_status()
        return self.update_status(
            status="running",
            started_at=_now(),
            ended_at=None,
            duration_s=None,
            error=None,
            failed_step=None,
            git_commit=git_commit(),
            host=socket.gethostname(),
            pid=os.getpid(),
            experiment=experiment,
            run_key=self.path.name,
            overrides=list(overrides),
            attempts=int(previous.get("attempts", 0)) + 1,
            resumed_from=resumed_from,
        )

    def mark_finished(self, status: str, error: str | None = None, failed_step: int | None = None) -> dict:
        """Record the end of an attempt with its outcome."""
        assert status in STATUSES, status
        current = self.read_status()
        ended = _dt.datetime.now(_dt.timezone.utc)
        duration = None
        if current.get("started_at"):
            duration = round((ended - _dt.datetime.fromisoformat(current["started_at"])).total_seconds(), 1)
        return self.update_status(
            status=status,
            ended_at=ended.isoformat(timespec="seconds"),
            duration_s=duration,
            error=error,
            failed_step=failed_step,
        )

    def read_metrics(self) -> dict:
        """metrics.json, or an empty dict."""
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.exists() else {}

    def write_metrics(self, metrics: dict) -> None:
        """Write metrics.json atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.metrics_file, metrics)


def decide_action(status: dict, *, force: bool, retry_failed: bool, has_checkpoint: bool) -> str:
    """What re-running a command does: 'skip', 'fresh', 'resume' or 'skip_failed'."""
    state = status.get("status", "pending")
    if state == "done":
        return "fresh" if force else "skip"
    if state == "failed" and not retry_failed:
        return "skip_failed"
    if force:
        return "fresh"
    return "resume" if has_checkpoint else "fresh"
