"""The run directory: its files and their formats, status names, the stored config and checkpoints, and
`record()`, the one way a process writes an attempt into it (with the directory's lock).

Layout (docs/architecture.md §7): `.hydra/config.yaml` and `overrides.yaml`, `status.json`, `metrics.json`
(`posereg.runs.metrics.RunMetrics`), `checkpoints/last.ckpt`, `best.ckpt` and `MODEL.md` (the model card,
`posereg.runs.card`), `csv/metrics.csv`, `train.log`, `.lock`. Plain Python: the report layer reads runs
through this module without importing training code.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from posereg.console import console
from posereg.errors import ConfigError, DataError
from posereg.jsonio import DamagedFileError, atomic_write_bytes, read_json, write_json
from posereg.paths import REPO_ROOT
from posereg.runs.card import model_card
from posereg.runs.launch import scheduler_job
from posereg.runs.lock import RunLock
from posereg.runs.metrics import RunMetrics
from posereg.runs.migrate import RUN_VERSION, stamped
from posereg.runs.trust import load_stored_config, read_yaml

STATUSES = ("done", "running", "interrupted", "failed", "pending")  # in the order reports count them
CHECKPOINTS = ("best", "last")


# what a run's recorded commit ends with when its code had uncommitted changes (read back by posereg.report)
DIRTY_SUFFIX = "+dirty"


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """$POSEREG_GIT_COMMIT when set, else the checkout's commit hash, with DIRTY_SUFFIX when it has local changes."""
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
    return (sha + (DIRTY_SUFFIX if dirty else "")) or None


def _check_status(status: dict[str, Any], path: Path) -> dict[str, Any]:
    """`status` when its fields have the types posereg writes; DamagedFileError naming `path` otherwise."""
    def bad(why: str) -> DamagedFileError:
        return DamagedFileError(f"{path} is damaged ({why})")

    if status.get("status", "pending") not in STATUSES:
        raise bad(f"status={str(status.get('status'))[:40]!r} is none of {', '.join(STATUSES)}")
    attempts = status.get("attempts", 0)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        raise bad(f"attempts={str(attempts)[:40]!r} is not a count")
    for key in ("started_at", "ended_at"):
        value = status.get(key)
        try:
            if value is not None:
                _dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad(f"{key}={str(value)[:40]!r} is not a time") from None
    overrides = status.get("overrides")
    if overrides is not None and not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        raise bad("overrides is not a list of strings")
    for key in ("launch", "resumed_from", "run_key", "experiment", "error", "git_commit", "host"):
        if not isinstance(status.get(key), str | type(None)):
            raise bad(f"{key} is not a string")
    return status


def read_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file (status.json, metrics.json), None when absent; DamagedFileError when it cannot be parsed
    or holds another type."""
    data = read_json(path)
    if data is not None and not isinstance(data, dict):
        raise DamagedFileError(f"{path} is damaged (a JSON {type(data).__name__} where posereg writes an object)")
    return data


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
    def card_file(self) -> Path:
        return self.checkpoint_dir / "MODEL.md"

    @property
    def config_file(self) -> Path:
        return self.path / ".hydra" / "config.yaml"

    @property
    def overrides_file(self) -> Path:
        return self.path / ".hydra" / "overrides.yaml"

    @property
    def csv_dir(self) -> Path:
        return self.path / "csv"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    @property
    def wandb_id_file(self) -> Path:
        return self.path / "wandb_id.txt"

    def is_run(self) -> bool:
        """A run directory has a status.json or a .hydra/overrides.yaml."""
        return self.status_file.is_file() or self.overrides_file.is_file()

    # ------------------------------------------------------------------------------------------ status
    def read_status(self, repair: bool = False) -> dict:
        """The status record; 'pending' for a new directory. A damaged file raises, or with `repair` is set
        aside and replaced by what the other files show (see `infer_status`)."""
        try:
            status = read_object(self.status_file)
            if status is not None:
                _check_status(status, self.status_file)
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
            metrics = self.metrics()
        except DamagedFileError:
            metrics = None
        if metrics is not None and metrics.final:
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
            run_version=RUN_VERSION,
        )

    def mark_finished(self, status: str, error: str | None = None, failed_step: int | None = None,
                      exit_code: int | None = None, **extra: Any) -> dict:
        """Record the end of an attempt with its outcome (and extra fields, e.g. a requeue)."""
        assert status in STATUSES, status
        current = self.read_status(repair=True)
        ended = _dt.datetime.now(_dt.timezone.utc)
        duration = None
        if current.get("started_at"):
            with suppress(TypeError, ValueError):  # a start time without a zone (a hand-edited file): no duration
                duration = round((ended - _dt.datetime.fromisoformat(current["started_at"])).total_seconds(), 1)
        return self.update_status(status=status, ended_at=ended.isoformat(timespec="seconds"), duration_s=duration,
                                  error=error, failed_step=failed_step, exit_code=exit_code, **extra)

    # -------------------------------------------------------------------------------- metrics, overrides
    def read_metrics(self) -> dict:
        """metrics.json as stored, or an empty dict (DamagedFileError when it cannot be parsed)."""
        data = read_object(self.metrics_file) or {}
        RunMetrics.from_json(data, self.metrics_file)  # DamagedFileError when a field has another type
        return data

    def metrics(self) -> RunMetrics | None:
        """metrics.json as a record, None when there is none (DamagedFileError when it cannot be parsed)."""
        data = read_object(self.metrics_file)
        return RunMetrics.from_json(data, self.metrics_file) if data else None

    def write_metrics(self, metrics: RunMetrics) -> None:
        """Write metrics.json atomically (an attempt's `done` does)."""
        write_json(self.metrics_file, metrics.to_json())

    def overrides(self) -> list[str]:
        """The overrides that define the run: .hydra/overrides.yaml, else those status.json recorded."""
        if self.overrides_file.is_file():
            try:  # read as safely as the config; a damaged file leaves the copy status.json keeps
                return [str(x) for x in read_yaml(self.overrides_file, str(self.overrides_file), expect=list)]
            except ConfigError as err:
                warnings.warn(str(err), stacklevel=2)
        try:
            status = read_object(self.status_file) or {}
        except DamagedFileError:
            status = {}
        return [str(x) for x in status.get("overrides") or []]

    def save_config(self, overrides: list[str], cfg: DictConfig | None = None) -> None:
        """`.hydra/overrides.yaml` and, when given, the composed config `.hydra/config.yaml` with this posereg's
        layout version (atomically)."""
        if cfg is not None:
            raw = stamped(OmegaConf.to_container(cfg, resolve=False))
            atomic_write_bytes(self.config_file, OmegaConf.to_yaml(OmegaConf.create(raw)).encode())
        atomic_write_bytes(self.overrides_file, yaml.safe_dump(list(overrides)).encode())

    def clear_outputs(self) -> None:
        """Remove what an earlier attempt left (checkpoints, logs, metrics) before a fresh start."""
        for leftover in (self.checkpoint_dir, self.csv_dir, self.tensorboard_dir, self.metrics_file):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()

    def write_card(self, cfg: DictConfig, metrics: RunMetrics | None, interface: dict | None = None) -> Path:
        """Write the model card, MODEL.md beside the checkpoints (`posereg.runs.card`), atomically."""
        text = model_card(self.path, cfg, metrics, self.read_status(repair=True), interface)
        atomic_write_bytes(self.card_file, text.encode())
        return self.card_file

    # ------------------------------------------------------------------------- opening a finished run
    def config(self, setting: str = "run") -> DictConfig:
        """The stored config: read safely, brought up to date, without security settings and allowed to build
        only what posereg builds (`posereg.runs.trust`); ConfigError naming `setting` when the directory has
        none, or the file and key that is refused."""
        if not self.config_file.is_file():
            raise ConfigError(f"{setting}={self.path}: not a posereg run directory (no .hydra/config.yaml)")
        return load_stored_config(self.config_file)

    def checkpoint(self, which: str = "best", setting: str = "run") -> Path:
        """`best` (best.ckpt, else last.ckpt), `last`, or a checkpoint file; ConfigError naming `setting` when
        it does not exist."""
        if which == "best":
            candidates = [self.best_ckpt, self.last_ckpt]
        elif which == "last":
            candidates = [self.last_ckpt]
        else:
            candidates = [Path(which)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            what = f"checkpoints/{which}.ckpt" if which in CHECKPOINTS else f"checkpoint file {which}"
            raise ConfigError(f"{setting}={self.path}: no {what} (is the run trained? ckpt=best|last|<file>)")
        return found

    # ---------------------------------------------------------------------------------------- writing
    @contextmanager
    def record(self) -> Iterator[Attempt]:
        """Own the directory for one attempt: hold its lock (RunInUseError naming the owner when another
        process holds it) while the block runs. An attempt started and left without an outcome is recorded
        as failed when the block raises (exit code 2 for a ConfigError / DataError, else 1)."""
        with RunLock(self.path, scheduler_job(), now()):
            attempt = Attempt(self)
            try:
                yield attempt
            except BaseException as err:
                if attempt.open:
                    attempt.end("failed", error=f"{type(err).__name__}: {err}",
                                exit_code=2 if isinstance(err, ConfigError | DataError) else 1)
                raise
            if attempt.open:
                attempt.end("interrupted", error="the attempt ended without an outcome", exit_code=1)


@dataclass
class Attempt:
    """One attempt at a run directory, inside `RunDir.record()`: `start`, then `done` or `end`."""

    run: RunDir
    started: bool = False
    ended: bool = False

    @property
    def open(self) -> bool:
        """Started and not ended yet."""
        return self.started and not self.ended

    def start(self, experiment: str, overrides: list[str], launch: str, resumed_from: str | None = None) -> None:
        """Record the launch in status.json (running)."""
        self.run.mark_running(experiment, overrides, resumed_from=resumed_from, launch=launch)
        self.started = True

    def done(self, metrics: RunMetrics) -> None:
        """Write metrics.json, then record `done` (with what stopped training early, when something did)."""
        self.run.write_metrics(metrics)
        stopped_by = metrics.setup.get("stopped_by")
        self.run.mark_finished("done", exit_code=0, **({"stopped_by": stopped_by} if stopped_by else {}))
        self.ended = True

    def end(self, status: str, **fields: Any) -> None:
        """Record another outcome (failed, interrupted) with its error and exit code; on a full or read-only
        disk say so instead of raising, so the error being recorded stays the one reported."""
        self.ended = True
        try:
            self.run.mark_finished(status, **fields)
        except OSError as err:
            console.print(f"[red]could not update {self.run.status_file}[/red]: {err.strerror}")


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories at or below `root` (not descending into a run's own sub-folders)."""
    root = Path(root)
    if RunDir(root).is_run():
        return [root]
    found: list[Path] = []
    if root.is_dir():
        for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found += find_run_dirs(child)
    return found
