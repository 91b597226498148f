"""A training DataLoader whose position inside an epoch survives a checkpoint (exact mid-epoch resume)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader


class ResumableDataLoader(DataLoader):
    """DataLoader with Lightning's state_dict/load_state_dict: resuming continues the same batch order.

    The epoch comes from Lightning's fit loop, which restores it from the checkpoint: the data module
    starts a new loader at the fit loop's epoch (`start_at`; Lightning creates the first iterator before
    it calls ``set_epoch``), and Lightning's later ``set_epoch`` calls reach the loader through the
    `_EpochSetter` it hangs on the batch sampler (Lightning calls ``set_epoch`` only on a batch sampler's
    inner ``sampler``). Without both, a run resumed from an end-of-epoch checkpoint, whose loader state
    Lightning does not restore, replays epoch 0's order. The loader skips the batches already trained on
    after a mid-epoch resume; the batch sampler must accept ``set_epoch(e)`` and ``skip_batches(n)``
    (MixedSourceBatchSampler does), so skipping loads nothing. The number of completed batches is kept by
    :class:`BatchPositionTracker`, not by counting yields, because Lightning prefetches one batch ahead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next = self.batch_sampler.sampler = _EpochSetter()
        self.epoch = 0  # epoch of the current (or last) iteration
        self.completed = 0  # batches of that epoch trained on
        self.num_batches = len(self)  # batches Lightning takes per epoch (limit_train_batches), set by the tracker
        self._skip = 0

    def __iter__(self) -> Iterator[Any]:
        self.epoch, self._next.epoch = self._next.epoch, self._next.epoch + 1
        skip, self._skip = self._skip, 0
        self.completed = skip
        self.batch_sampler.set_epoch(self.epoch)
        if skip:
            self.batch_sampler.skip_batches(skip)
        return super().__iter__()

    def start_at(self, epoch: int) -> None:
        """Make the next iteration yield `epoch` from its start (a mid-epoch state loaded later still wins)."""
        self._next.epoch, self._skip = int(epoch), 0

    def state_dict(self) -> dict[str, int]:
        """Epoch and position inside it."""
        return {"epoch": int(self.epoch), "completed": int(self.completed), "num_batches": int(self.num_batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the saved epoch after its completed batches, or start the next one if it had finished."""
        epoch, completed = int(state.get("epoch", 0)), int(state.get("completed", 0))
        if completed >= int(state.get("num_batches", len(self))):
            self._next.epoch, self._skip = epoch + 1, 0
        else:
            self._next.epoch, self._skip = epoch, completed


class _EpochSetter:
    """Where Lightning's `set_epoch(fit-loop epoch)` lands: the epoch the loader's next iteration yields.

    It holds the epoch rather than the loader: a loader -> batch sampler -> loader cycle would leave a dropped
    loader to the cyclic garbage collector, which finalizes the worker queues before the iterator can use
    them to end its persistent workers (they then wait forever).
    """

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class BatchPositionTracker(pl.Callback):
    """Tells the ResumableDataLoader how many batches of the epoch have been trained on."""

    @staticmethod
    def _loader(trainer: pl.Trainer) -> ResumableDataLoader | None:
        loader = trainer.train_dataloader
        return loader if isinstance(loader, ResumableDataLoader) else None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if (loader := self._loader(trainer)) is not None:
            loader.completed = batch_idx
            loader.num_batches = int(min(trainer.num_training_batches, len(loader)))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (loader := self._loader(trainer)) is not None:
            loader.completed = batch_idx + 1
