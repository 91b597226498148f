"""Batch sampler that mixes sources with exact per-batch counts, deterministic per (seed, epoch)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler


def batch_counts(ratios: Sequence[float], batch_size: int) -> list[int]:
    """Per-source sample counts of one batch: floor(r * B) plus the remainder by largest fraction."""
    raw = [r * batch_size for r in ratios]
    counts = [math.floor(x + 1e-9) for x in raw]
    rest = batch_size - sum(counts)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


class MixedSourceBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches of (source, index) pairs with exactly ``counts[s]`` samples of source s each.

    Indices of a *procedural* source (any index is a distinct sample) continue across epochs, so
    every epoch sees new samples; other sources are walked through shuffled permutations. The order
    depends only on (seed, epoch); under DDP each rank takes every ``world_size``-th batch.
    """

    def __init__(self, sizes: Sequence[int], counts: Sequence[int], num_batches: int, seed: int = 0,
                 procedural: Sequence[bool] | None = None, rank: int = 0, world_size: int = 1) -> None:
        if len(sizes) != len(counts):
            raise ValueError("MixedSourceBatchSampler: sizes and counts must have one entry per source")
        for s, (n, c) in enumerate(zip(sizes, counts, strict=True)):
            if c > 0 and n <= 0:
                raise ValueError(f"MixedSourceBatchSampler: source {s} is empty but has {c} samples per batch")
        self.sizes, self.counts = list(sizes), list(counts)
        self.num_batches, self.seed = int(num_batches), int(seed)
        self.procedural = list(procedural) if procedural is not None else [False] * len(sizes)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self._skip = 0

    def skip_batches(self, n: int) -> None:
        """Make the next iteration leave out its first n batches (exact mid-epoch resume, nothing loaded)."""
        self._skip = int(n)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields (Lightning calls this)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(range(self.rank, self.num_batches, self.world_size))

    def _indices(self, s: int, rng: np.random.Generator, epoch: int) -> np.ndarray:
        need = self.counts[s] * self.num_batches
        if self.procedural[s]:
            return epoch * need + rng.permutation(need)
        reps = -(-need // self.sizes[s]) if need else 0
        return np.concatenate([rng.permutation(self.sizes[s]) for _ in range(reps)] or [np.zeros(0, int)])[:need]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        self.epoch += 1  # without set_epoch, successive iterations are successive epochs
        rng = np.random.default_rng(np.random.SeedSequence(entropy=self.seed,
                                                           spawn_key=(zlib.crc32(b"batches"), epoch)))
        skip, self._skip = self._skip, 0
        per_source = [self._indices(s, rng, epoch) for s in range(len(self.sizes))]
        mine = 0
        for b in range(self.num_batches):
            batch = [(s, int(idx[b * c + k])) for s, (idx, c) in enumerate(zip(per_source, self.counts, strict=True))
                     for k in range(c)]
            order = rng.permutation(len(batch))
            if b % self.world_size == self.rank:
                mine += 1
                if mine > skip:
                    yield [batch[i] for i in order]


class SourceMix(Dataset):
    """Dataset indexed by (source, index) pairs, as yielded by MixedSourceBatchSampler."""

    def __init__(self, datasets: Sequence[Dataset], names: Sequence[str]) -> None:
        self.datasets, self.names = list(datasets), list(names)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        s, i = key
        sample = self.datasets[s][i]
        sample["meta"] = {**sample["meta"], "source": self.names[s]}
        return sample


class ShardSampler(Sampler[int]):
    """Evaluation order for one rank: indices rank, rank + world, ... of 0..n-1 (no padding, no repeat).

    Every sample is evaluated exactly once across the ranks; ranks may get one sample more or less
    (metrics reduce their states across ranks, so unequal shares are fine).
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.rank, self.world_size = int(n), int(rank), int(world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))
