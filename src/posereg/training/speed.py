"""GPU speed options: the channels_last / torch.compile callback that `trainer=gpu` switches on.

`trainer=gpu` sets `trainer.precision: ${amp_precision:}` (`posereg.devices.amp_precision`: bf16 autocast where
the GPU computes bf16 natively, fp16 otherwise) and switches on `callbacks.speed` (a `SpeedOptions`), whose
settings are `channels_last`, `compile` and `compile_mode`.
"""

from __future__ import annotations

import itertools
from typing import Any

import lightning.pytorch as pl
import torch

from posereg.errors import ConfigError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """Give every 4-D parameter and buffer of `module` the channels_last layout, in place; returns the module."""
    # `.data` is replaced, the Parameter objects stay (optimizers and DDP keep theirs); Module.to(memory_format=)
    # would refuse 5-D tensors
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return module


def _images_channels_last(batch: Any) -> None:
    """Give a batch's 4-D `image` tensor the channels_last layout (in place in the batch dict)."""
    if isinstance(batch, dict) and torch.is_tensor(batch.get("image")) and batch["image"].dim() == 4:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)


class SpeedOptions(pl.Callback):
    """channels_last weights and input images, and `torch.compile` of `pl_module.net`, from fit/test start on."""

    def __init__(self, channels_last: bool = False, compile: bool = False, compile_mode: str = "default") -> None:
        if compile_mode not in COMPILE_MODES:
            raise ConfigError(f"callbacks.speed.compile_mode={compile_mode!r}: use one of {', '.join(COMPILE_MODES)}")
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        self.compile_mode = compile_mode

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Convert and compile before the strategy moves the module to its device (and wraps it for DDP)."""
        net = pl_module.net
        if self.channels_last:
            to_channels_last(pl_module)
        # nn.Module.compile() compiles in place: state_dict keys (checkpoints, init_from, eval) stay the same;
        # fit then test on one module compiles once
        if self.compile and getattr(net, "_compiled_call_impl", None) is None:
            net.compile(mode=None if self.compile_mode == "default" else self.compile_mode)

    def prepare_batch(self, batch: Any) -> None:
        """channels_last images when that option is on (in place in the batch dict)."""
        if self.channels_last:
            _images_channels_last(batch)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """channels_last training images."""
        self.prepare_batch(batch)

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        """channels_last validation images."""
        self.prepare_batch(batch)

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                            batch_idx: int, dataloader_idx: int = 0) -> None:
        """channels_last test images."""
        self.prepare_batch(batch)
