"""Lightning callbacks that make runs resumable and their results collectable."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


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
    """Writes last.ckpt when training is interrupted (Ctrl-C, SIGTERM), never after a failure."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not is_interruption(exception) or trainer.state.fn != "fit":
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(str(self.path))
        self.saved = True


def is_interruption(exception: BaseException) -> bool:
    """True for Ctrl-C and Lightning's SIGTERM exception."""
    return isinstance(exception, KeyboardInterrupt) or type(exception).__name__ == "SIGTERMException"


class RngState(Callback):
    """Saves and restores python, numpy and torch RNG states with every checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        np.random.set_state(state_dict["numpy"])
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
