"""Shared fixtures: compose configs once per call, run directories under tmp_path, tiny budgets."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from posereg.paths import CONF_DIR
from posereg.runs import register_resolvers

os.environ.setdefault("WANDB_MODE", "offline")
# nothing is downloaded in tests: a config that asks timm for pretrained weights reads the Hugging Face cache
# or fails at once with a one-line ConfigError, never asking the hub (set before huggingface_hub is imported)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
# `make test` runs pytest-xdist workers (one per core): a worker gets its share of the cores, not all of them
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))
register_resolvers()

class InterruptAt(pl.Callback):
    """Simulates Ctrl-C after a given global step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


TINY = ["debug=tiny", "logger=none"]
# debug=tiny keeps no best.ckpt (only last.ckpt, weights-only once done): tests of best.ckpt ask for it back
BEST = "callbacks.best_checkpoint.monitor=${data.monitor}"
# Training-time augmentation also draws from torch's process seed; a fixed seed per test makes a CI
# run reproducible. POSEREG_TEST_SEED=k probes the suite's margins under other draws.
TEST_SEED = int(os.environ.get("POSEREG_TEST_SEED", "0"))


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    """Seed torch, numpy and random before every test."""
    torch.manual_seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    random.seed(TEST_SEED)


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose the root config with overrides, as posereg-train would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a tiny config whose runs go under tmp_path."""

    def _make(*overrides: str) -> DictConfig:
        return compose_config([*TINY, f"paths.runs_dir={tmp_path / 'runs'}", *overrides])

    return _make
