"""The run lifecycle: what re-running a command does to its run directory, as one context manager.

    with run_lifecycle(cfg, run_path, overrides) as session:
        if not session.skipped:
            session.metrics = train(cfg, session)

Enter (rank 0 only): take the run directory's lock (`RunDir.record`), read status.json (a damaged one is
set aside and inferred from the other files), decide skip (done) / skip_failed / resume (from the newest
loadable checkpoint; damaged ones are set aside) / fresh, check that a resumed run's saved config still
describes it, save the config on a fresh start, and record the launch in status.json. Body: the recipe
trains. Exit: metrics.json, the model card (checkpoints/MODEL.md) and `done`, or `failed` / `interrupted` with
the error, a one-line message and an exit code a scheduler can read (2 bad input, 3 non-finite loss, 74 disk
error, 75 run in use, 130 SIGINT, 143 SIGTERM). Other ranks of a distributed launch never write: they wait for
rank 0's launch token and follow its decision.
"""

from __future__ import annotations

import errno
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.console import console
from posereg.data.resumable import BatchPositionTracker
from posereg.errors import ConfigError, DataError
from posereg.jsonio import DamagedFileError, read_json
from posereg.paths import CONF_DIR
from posereg.runs.checkpoints import weights_only_copy
from posereg.runs.files import Attempt, RunDir, now, set_aside
from posereg.runs.keys import defines_run, override_key
from posereg.runs.launch import is_rank_zero, launch_token, requeue_slurm_job, slurm_job_id
from posereg.runs.lock import EXIT_IN_USE, RunInUseError
from posereg.runs.metrics import RunMetrics
from posereg.training.callbacks import (
    InterruptCheckpoint,
    MetricHistory,
    NanGuard,
    NonFiniteLossError,
    RequeueOnSignal,
    RequeueRequested,
    RngState,
    interruption_signal,
    last_checkpoint,
)
from posereg.training.runlog import run_log
from posereg.weights import DamagedCheckpointError, load_checkpoint

EXIT_BAD_INPUT, EXIT_NONFINITE, EXIT_DISK = 2, 3, 74
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)
FOLLOW_TIMEOUT_S = 600.0


@dataclass
class RunSession:
    """One launch of a run: what the lifecycle decided, and the bookkeeping callbacks it owns."""

    run: RunDir
    action: str  # fresh | resume | skip | skip_failed | busy
    resume_from: Path | None = None
    owner: bool = True  # this process writes the run files (global rank 0)
    trust_checkpoints: bool = False
    metrics: RunMetrics | None = None
    exit_code: int = 0
    history: MetricHistory = field(default_factory=lambda: MetricHistory(None))
    interrupt: InterruptCheckpoint | None = None
    overrides: list[str] = field(default_factory=list)
    requeue_signal: str | None = None  # the scheduler's warning signal, when running under SLURM
    discard: bool = False  # remove the run directory on exit (a single run refused for bad input before it began)
    training_started: bool = False  # set by the recipe just before fitting
    attempt: Attempt | None = None  # the attempt this process records (rank 0, when it trains)
    interface: dict | None = None  # the network's exported interface, for the model card (set by the recipe)

    @property
    def skipped(self) -> bool:
        """True when nothing is trained in this launch."""
        return self.action in ("skip", "skip_failed", "busy")

    def callbacks(self) -> list[pl.Callback]:
        """The callbacks resume depends on: epoch position, last.ckpt, RNG states, history, NaN guard."""
        self.interrupt = InterruptCheckpoint(self.run.last_ckpt)
        callbacks = [
            BatchPositionTracker(),  # first: an interruption in a later callback still sees the position
            last_checkpoint(str(self.run.checkpoint_dir), every_n_epochs=1),
            NanGuard(),
            self.interrupt,
            RngState(),
            self.history,
        ]
        if self.requeue_signal:
            callbacks.append(RequeueOnSignal(self.requeue_signal))
        return callbacks


@contextmanager
def run_lifecycle(cfg: DictConfig, run_path: Path, overrides: list[str], multirun: bool = False
                  ) -> Iterator[RunSession]:
    """Own one launch of a run directory (see the module docstring): enter, yield the session, exit."""
    run = RunDir(run_path)
    with open_dict(cfg):
        cfg.paths.run_dir = str(run.path)
    session: RunSession | None = None
    try:
        with ExitStack() as held:  # the run's lock, while this process records an attempt
            session = _enter(cfg, run, list(overrides), multirun, held)
            try:
                with _train_log(session):
                    yield session
            except BaseException as err:  # noqa: BLE001 - status must say what happened, whatever it was
                _exit_failed(session, err, multirun)
            else:
                _exit(cfg, session)
    finally:
        if session is not None and session.discard:
            shutil.rmtree(run.path, ignore_errors=True)
            _remove_empty_parents(run.path, Path(str(cfg.paths.runs_dir)))


def _remove_empty_parents(path: Path, top: Path) -> None:
    """Remove the folders above `path` up to `top` (included) that are empty: the experiment folder and runs
    folder a refused command created."""
    top = top.resolve()
    for parent in path.resolve().parents:
        if parent != top and top not in parent.parents:
            return
        try:
            parent.rmdir()  # only when empty
        except OSError:
            return
        if parent == top:
            return


# ---------------------------------------------------------------------------------------------- enter
def _enter(cfg: DictConfig, run: RunDir, overrides: list[str], multirun: bool, held: ExitStack) -> RunSession:
    """Follow rank 0, or take the lock, decide and record the launch; the session trains nothing when the run is
    busy, done, failed before (retry_failed=false) or refused (bad input: exit 2, or a skipped cell in a grid)."""
    if not is_rank_zero():
        return _follow(cfg, run, overrides)
    try:
        attempt = held.enter_context(run.record())
    except RunInUseError as err:
        console.print(f"[bold red]busy[/bold red]: {err}")
        if not multirun:
            raise SystemExit(EXIT_IN_USE) from None
        return RunSession(run, "busy", exit_code=EXIT_IN_USE)
    try:
        session = _decide(cfg, run)
        session.overrides = overrides
        session.requeue_signal = str(cfg.requeue_signal) if slurm_job_id() and cfg.requeue_signal else None
        if not session.skipped:
            noted = _resume_config(cfg, run, overrides) if session.action == "resume" else []
            if session.action == "fresh":
                if run.read_status().get("status") != "pending":
                    run.clear_outputs()
                run.save_config(overrides, cfg)  # once per fresh start, never on resume
            attempt.start(str(cfg.experiment_name), overrides, launch=launch_token(),
                          resumed_from=str(session.resume_from) if session.resume_from else None)
            session.attempt = attempt
            if noted:
                console.print(f"[cyan]resuming with other execution settings[/cyan]: {', '.join(noted[:6])}")
    except (ConfigError, DataError) as err:
        console.print(f"[bold red]error[/bold red]: {err}")
        if not multirun:
            raise SystemExit(EXIT_BAD_INPUT) from None
        return RunSession(run, "skip_failed", exit_code=EXIT_BAD_INPUT)
    _announce(cfg, session)
    return session


def _train_log(session: RunSession) -> AbstractContextManager:
    """train.log for a launch this process records (the body's output is appended to it), else nothing."""
    if session.attempt is None:
        return nullcontext()
    return run_log(session.run.log_file, f"{now()} launch {launch_token()} ({session.action})")


def _announce(cfg: DictConfig, session: RunSession) -> None:
    """Say what this launch does when it is not a plain fresh start."""
    run = session.run
    if session.action == "skip":
        console.print(f"[green]done already[/green]: {run.path} (force=true re-runs it; posereg-eval "
                      "evaluates it with other settings)")
        if "tensorboard" in (cfg.get("logger") or {}) and not run.tensorboard_dir.exists():
            console.print(f"  it was trained without TensorBoard: `posereg-report --to-tensorboard {run.path}` "
                          "writes its CSV history as TensorBoard events")
    elif session.action == "skip_failed":
        console.print(f"[red]failed before, not retried[/red] (retry_failed=false): {run.path}")
    elif session.resume_from:
        console.print(f"[cyan]resuming[/cyan] {run.path} from {session.resume_from.name}")


def _find_resume_checkpoint(run: RunDir, trust: bool) -> Path | None:
    """The newest checkpoint that loads and can resume a fit (last, then best); damaged ones are set aside with a
    warning, weights-only ones (keep_checkpoints=weights) are passed over."""
    for candidate in (run.last_ckpt, run.best_ckpt):
        if not candidate.exists():
            continue
        try:
            if not load_checkpoint(candidate, trust=trust).get("posereg_weights_only"):
                return candidate
        except DamagedCheckpointError as err:
            set_aside(candidate, str(err))
    return None


def _decide(cfg: DictConfig, run: RunDir) -> RunSession:
    """Skip, retry, resume or start fresh, from the run directory's files and the flags."""
    trust = bool(cfg.trust_checkpoints)
    status = run.read_status(repair=True)
    state = status.get("status", "pending")
    history = MetricHistory(cfg.data.get("monitor"), cfg.data.get("monitor_mode", "max"))
    if state == "done" and not cfg.force:
        try:
            return RunSession(run, "skip", metrics=run.metrics(), history=history)
        except DamagedFileError as err:
            set_aside(run.metrics_file, str(err))  # recomputed by resuming the finished run below
    if state == "failed" and not cfg.retry_failed:
        return RunSession(run, "skip_failed", history=history)
    if cfg.force or str(cfg.resume).lower() == "false":
        return RunSession(run, "fresh", trust_checkpoints=trust, history=history)
    ckpt = _find_resume_checkpoint(run, trust)
    return RunSession(run, "resume" if ckpt else "fresh", ckpt, trust_checkpoints=trust, history=history)


def _flat(cfg: DictConfig) -> dict[str, Any]:
    """Dotted keys -> resolved values (lists kept whole)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "")
    return out


def _explicit(key: str, given: set[str]) -> bool:
    """Whether `key` was set explicitly: it, or a mapping above it, is in `given` (override keys, groups left out)."""
    return any(key == g or key.startswith(g + ".") for g in given)


def _merge_saved(current: dict[str, Any], saved: dict[str, Any], prefix: str = "") -> None:
    """Put the saved values of the settings that define a run into `current` (unresolved containers, in place).

    A `_target_` node of another class is the saved node whole; one of the same class takes the saved values
    and keeps arguments added since; in a section (no `_target_`), entries the run did not have (a loss term,
    a metric, a source: nodes with a `_target_`) are dropped and plain settings added since are kept.
    Execution settings stay the command's."""
    for key, value in saved.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        here = current.get(key)
        if isinstance(value, dict) and value:
            other_class = isinstance(here, dict) and here.get("_target_") != value.get("_target_")
            if not isinstance(here, dict) or (other_class and "_target_" in value):
                if defines_run(path):
                    current[key] = value
                continue
            _merge_saved(here, value, path)
        elif defines_run(path):
            current[key] = value
    if "_target_" not in saved:
        for key in [k for k, v in current.items() if k not in saved and isinstance(v, dict) and "_target_" in v]:
            if defines_run(f"{prefix}.{key}" if prefix else str(key)):
                del current[key]


def _resume_config(cfg: DictConfig, run: RunDir, overrides: list[str]) -> list[str]:
    """Make `cfg` the configuration a resumed run started with (it trains on with it, in place): the settings
    that define the run take their saved values (`run.config()`, brought up to date), so a default that changed
    since does not change the run; execution settings (device, precision, loggers, ...) are this command's.
    ConfigError when a setting given explicitly (in the run's overrides.yaml or on this command line) now has
    another value. Returns the differences to note."""
    if not run.config_file.is_file():
        return []
    stored = run.config()
    saved, current = _flat(stored), _flat(cfg)
    changed = sorted(k for k in set(saved) | set(current)
                     if saved.get(k) != current.get(k) and not k.startswith(("paths.", "hydra.")))
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    given = {override_key(o) for o in [*run.overrides(), *overrides]} - groups
    refused = [k for k in changed if defines_run(k) and k in saved and k in current and _explicit(k, given)]
    if refused:
        shown = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in refused[:4])
        raise ConfigError(f"{run.path} was started with other settings ({shown}): re-run with the run's values to "
                          "resume it, or with force=true to start it again")
    merged = OmegaConf.to_container(cfg, resolve=False)
    _merge_saved(merged, OmegaConf.to_container(stored, resolve=False))
    with open_dict(cfg):
        for key in [k for k in cfg if k not in merged]:
            del cfg[key]
        for key, value in merged.items():
            cfg[key] = value
    kept = [f"{k} {saved.get(k)!r} (now {current.get(k)!r})" for k in changed if defines_run(k) and k in saved]
    if kept:
        console.print(f"[cyan]resuming with the run's own settings[/cyan] where defaults changed since: "
                      f"{', '.join(kept[:6])}")
    return [k for k in changed if not defines_run(k)]


def _follow(cfg: DictConfig, run: RunDir, overrides: list[str]) -> RunSession:
    """A non-zero rank: wait until rank 0 has recorded this launch, then resume from the same checkpoint."""
    expected, deadline = launch_token(), time.monotonic() + FOLLOW_TIMEOUT_S
    while True:
        try:
            status = read_json(run.status_file) or {}
        except DamagedFileError:
            status = {}
        if status.get("launch") == expected and status.get("status") == "running":
            ckpt = status.get("resumed_from")
            return RunSession(run, "resume" if ckpt else "fresh", Path(ckpt) if ckpt else None, owner=False,
                              trust_checkpoints=bool(cfg.trust_checkpoints), overrides=overrides,
                              history=MetricHistory(cfg.data.get("monitor"), cfg.data.get("monitor_mode", "max")))
        if status.get("status") == "done" and not cfg.force:
            return RunSession(run, "skip", owner=False, overrides=overrides)
        if time.monotonic() > deadline:
            raise ConfigError(f"rank 0 did not start {run.path} within {FOLLOW_TIMEOUT_S:.0f} s (launch {expected})")
        time.sleep(0.2)


# ----------------------------------------------------------------------------------------------- exit
def _exit(cfg: DictConfig, session: RunSession) -> None:
    """A launch whose recipe returned: metrics.json and `done`, or `interrupted` when training stopped early."""
    attempt = session.attempt
    if attempt is None:
        return
    if session.metrics is None:
        attempt.end("interrupted", error="training stopped before the end", exit_code=1)
        return
    attempt.done(session.metrics)
    run = session.run
    run.write_card(cfg, session.metrics, session.interface)
    if cfg.keep_checkpoints == "weights":
        saved = sum(weights_only_copy(c) for c in (run.last_ckpt, run.best_ckpt) if c.exists())
        console.print(f"checkpoints reduced to weights ({saved / 1e6:.0f} MB freed; keep_checkpoints=weights)")


def _disk_error(err: BaseException) -> OSError | None:
    """The OSError (disk full, read-only, no permission) behind `err`, if any."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def _exit_failed(session: RunSession, err: BaseException, multirun: bool) -> None:
    """A launch whose recipe raised: record it failed or interrupted, turn it into a message and an exit code
    (raised as SystemExit for a single run; a grid's cell returns, with `session.exit_code`)."""
    attempt = session.attempt
    if attempt is None:  # a follower, or a launch that trains nothing: the error is the caller's
        raise err
    run = session.run
    signal = (session.interrupt.signal if session.interrupt else None) or interruption_signal(err)
    if isinstance(err, RequeueRequested) or (signal and signal == session.requeue_signal):
        job, rc = requeue_slurm_job()
        code = err.code if isinstance(err, RequeueRequested) else EXIT_SIGNAL.get(signal or "", 1)
        attempt.end("interrupted", error=f"{signal}: requeued SLURM job {job}", exit_code=code,
                    requeue={"job": job, "scontrol_exit_code": rc})
        console.print(f"[yellow]requeued[/yellow] SLURM job {job} on {signal} (scontrol exit code {rc}); "
                      f"last.ckpt written, the requeued job resumes {run.path}")
        raise SystemExit(code) from None
    if signal is not None or isinstance(err, SystemExit):
        code = EXIT_SIGNAL.get(signal or "", 1)
        attempt.end("interrupted", error=signal or type(err).__name__, exit_code=code)
        saved = run.last_ckpt.exists()
        console.print(f"[yellow]interrupted[/yellow] ({signal or 'exit'}): "
                      + (f"re-run the same command to resume {run.path}" if saved else "no checkpoint was written yet"))
        raise SystemExit(code) from None
    if isinstance(err, ConfigError | DataError):
        code, message = EXIT_BAD_INPUT, f"{type(err).__name__}: {err}"
        attempt.end("failed", error=message, exit_code=code)
        console.print(f"[bold red]error[/bold red]: {err}")
        # a single command refused before it trained leaves no directory behind (a grid keeps the failed cell)
        session.discard = not multirun and session.action == "fresh" and not session.training_started
    elif isinstance(err, NonFiniteLossError):
        code = EXIT_NONFINITE
        attempt.end("failed", error=str(err), failed_step=err.step, exit_code=code)
        kept = "last.ckpt from before it is kept" if run.last_ckpt.exists() else "no checkpoint had been written yet"
        console.print(f"[bold red]stopped[/bold red]: {err}; {kept}")
    elif (disk := _disk_error(err)) is not None:
        code = EXIT_DISK
        message = f"cannot write {disk.filename or run.path}: {disk.strerror}"
        attempt.end("failed", error=message, exit_code=code)
        console.print(f"[bold red]error[/bold red]: {message}; the previous checkpoint and files are intact")
    else:
        code = 1
        attempt.end("failed", error="".join(traceback.format_exception_only(type(err), err)).strip(), exit_code=code)
        if not multirun:
            raise err
        traceback.print_exception(err)
    session.exit_code = code
    if not multirun:
        raise SystemExit(code) from None
