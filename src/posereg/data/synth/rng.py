"""A buffered random source: numpy's scalar draws cost microseconds each, block draws almost nothing.

``BlockRng(generator)`` draws uniforms and normals in blocks and hands them out one by one, so a
sample's hundreds of scalar draws stay cheap; it is as deterministic as the generator it wraps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class BlockRng:
    """The subset of numpy.random.Generator that SynthPose uses, served from pre-drawn blocks."""

    def __init__(self, generator: np.random.Generator, block: int = 256) -> None:
        self.gen = generator
        self.block = block
        self._u: list[float] = []
        self._n: list[float] = []

    def random(self, size: int | None = None) -> float | np.ndarray:
        """Uniform [0, 1) scalar, or an array of ``size``."""
        if size is not None:
            return self.gen.random(size)
        if not self._u:
            self._u = self.gen.random(self.block).tolist()
        return self._u.pop()

    def uniform(self, low: float | Sequence[float] = 0.0, high: float | Sequence[float] = 1.0,
                size: int | tuple[int, ...] | None = None) -> float | np.ndarray:
        """Uniform in [low, high); arrays delegate to the generator."""
        if size is not None or not np.isscalar(low) or not np.isscalar(high):
            return self.gen.uniform(low, high, size)
        return low + (high - low) * self.random()

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: int | None = None) -> float | np.ndarray:
        """Gaussian scalar (or array when size is given)."""
        if size is not None:
            return self.gen.normal(loc, scale, size)
        if not self._n:
            self._n = self.gen.standard_normal(self.block).tolist()
        return loc + scale * self._n.pop()

    def integers(self, low: int, high: int | None = None, size: int | tuple[int, ...] | None = None,
                 dtype: type = np.int64) -> int | np.ndarray:
        """Integer in [low, high) (or [0, low)); arrays delegate to the generator."""
        if size is not None:
            return self.gen.integers(low, high, size=size, dtype=dtype)
        if high is None:
            low, high = 0, low
        return low + min(int(self.random() * (high - low)), high - low - 1)

    def choice(self, a: int | Sequence, p: Sequence[float] | None = None) -> object:
        """One element of range(a) or of a sequence, optionally with probabilities p."""
        n = a if isinstance(a, int) else len(a)
        if p is None:
            k = self.integers(n)
        else:
            cum = np.cumsum(p)
            k = min(int(np.searchsorted(cum, self.random() * cum[-1], side="right")), n - 1)
        return k if isinstance(a, int) else a[k]

    def poisson(self, lam: float) -> int:
        """Poisson draw (Knuth's method; lam is small here)."""
        if lam <= 0:
            return 0
        limit, k, prod = math.exp(-lam), 0, self.random()
        while prod > limit:
            k += 1
            prod *= self.random()
        return k
