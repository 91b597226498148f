"""Lightning callbacks that make runs resumable and their results collectable."""

from __future__ import annotations

import math
import random
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from posereg.errors import ConfigError


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss becomes NaN or infinite."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"non-finite training loss ({value}) at global step {step}")
        self.step = step


class NanGuard(Callback):
    """Stops training before a NaN/inf loss is back-propagated, so checkpoints stay clean."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(trainer.global_step, value)


class InterruptCheckpoint(Callback):
    """Writes last.ckpt when training is interrupted (Ctrl-C, SIGTERM), never after a failure.

    `signal` records which interruption it was ("SIGINT" or "SIGTERM"): Lightning turns Ctrl-C into
    `sys.exit(1)`, so the run lifecycle asks this callback to pick the exit code (130 or 143).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved = False
        self.signal: str | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.signal = interruption_signal(exception)
        if self.signal is None or trainer.state.fn != "fit":
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(str(self.path))
        self.saved = True


def interruption_signal(exception: BaseException) -> str | None:
    """"SIGINT" for Ctrl-C, "SIGTERM" for Lightning's SIGTERM exception, the signal name of a scheduler's
    requeue warning, None for anything else."""
    if isinstance(exception, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exception, RequeueRequested):
        return exception.signal_name
    if type(exception).__name__ == "SIGTERMException":
        return "SIGTERM"
    return None


class RequeueRequested(SystemExit):
    """The scheduler's warning signal arrived: stop after this step so the job can be requeued."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(128 + int(getattr(signal, signal_name)))
        self.signal_name = signal_name


class RequeueOnSignal(Callback):
    """On a scheduler's warning signal (SLURM `--signal`), finish the current step and stop the run.

    The handler only sets a flag; the next step boundary raises RequeueRequested, so InterruptCheckpoint
    writes last.ckpt from a consistent state and the run lifecycle requeues the job (`scontrol requeue`).
    """

    def __init__(self, signal_name: str = "SIGUSR2") -> None:
        if not signal_name.startswith("SIG") or not hasattr(signal, signal_name):
            raise ConfigError(f"requeue_signal={signal_name!r} is not a signal name such as SIGUSR2")
        self.signal_name = signal_name
        self.requested = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            signal.signal(getattr(signal, self.signal_name), self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.requested:
            raise RequeueRequested(self.signal_name)


def last_checkpoint(dirpath: str, every_n_epochs: int | None = None,
                    every_n_train_steps: int | None = None) -> ModelCheckpoint | None:
    """A checkpoint callback writing `last.ckpt` at a cadence; None when no cadence is set."""
    if not every_n_epochs and not every_n_train_steps:
        return None
    # a top-1 checkpoint without monitor is "the latest"; save_last alone only writes last.ckpt when another
    # checkpoint was saved in the same step, i.e. never for a run without best.ckpt
    return ModelCheckpoint(dirpath=dirpath, filename="last", save_top_k=1, enable_version_counter=False,
                           every_n_epochs=every_n_epochs, every_n_train_steps=every_n_train_steps)


def best_checkpoint(dirpath: str, monitor: str | None, mode: str) -> ModelCheckpoint | None:
    """`best.ckpt` by the monitored validation metric; None when the data config monitors nothing."""
    if not monitor:
        return None
    return ModelCheckpoint(dirpath=dirpath, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                           enable_version_counter=False, auto_insert_metric_name=False)


def early_stopping(monitor: str | None, mode: str, patience: int | None) -> EarlyStopping | None:
    """Stop when the monitored metric has not improved for `patience` validations; None without patience."""
    if not patience or not monitor:
        return None
    return EarlyStopping(monitor=monitor, mode=mode, patience=int(patience))


class RngState(Callback):
    """Saves and restores python, numpy and torch RNG states with every checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        # numpy's state as plain values: a checkpoint then loads with weights_only=True (no numpy pickles)
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if torch.cuda.is_available() and state_dict.get("cuda"):
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _scalar_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        if not name.startswith(prefix):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)):
            out[name] = float(value)
    return out


class MetricHistory(Callback):
    """Keeps every epoch's validation metrics (survives resume) to find the best and final ones."""

    def __init__(self, monitor: str | None, mode: str = "max") -> None:
        self.monitor = monitor
        self.mode = mode
        self.history: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_validation_end, not *_epoch_end: callbacks' epoch-end hooks run before the module logs its metrics
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        row = _scalar_metrics(trainer.callback_metrics, "val/")
        if row:
            row["epoch"] = trainer.current_epoch
            row["step"] = trainer.global_step
            self.history.append(row)

    def best(self) -> dict[str, float]:
        """The history row with the best monitored value ({} if none)."""
        rows = [r for r in self.history if self.monitor in r and math.isfinite(r[self.monitor])]
        if not rows:
            return {}
        pick = max if self.mode == "max" else min
        return pick(rows, key=lambda r: r[self.monitor])

    def final(self) -> dict[str, float]:
        """The last validation row ({} if none)."""
        return self.history[-1] if self.history else {}

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
