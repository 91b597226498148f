"""A buffered random source: numpy's scalar draws cost microseconds each, block draws almost nothing.

``BlockRng(generator)`` draws uniforms and normals in blocks and hands them out one by one, so a
sample's scalar draws stay cheap; array draws go to the generator. It is as deterministic as the
generator it wraps.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

import numpy as np

_SCALAR = (int, float, np.number)


class BlockRng:
    """The subset of numpy.random.Generator that SynthPose uses, served from pre-drawn blocks."""

    def __init__(self, generator: np.random.Generator, block: int = 128) -> None:
        self.gen = generator
        self.block = block
        self._u: list[float] = []
        self._n: list[float] = []

    def random(self, size: int | tuple[int, ...] | None = None) -> float | np.ndarray:
        """Uniform [0, 1) scalar, or an array of ``size``."""
        if size is not None:
            return self.gen.random(size)
        if not self._u:
            self._u = self.gen.random(self.block).tolist()
        return self._u.pop()

    def uniform(self, low: float | Sequence[float] = 0.0, high: float | Sequence[float] = 1.0,
                size: int | tuple[int, ...] | None = None) -> float | np.ndarray:
        """Uniform in [low, high); arrays delegate to the generator."""
        if size is None and isinstance(low, _SCALAR) and isinstance(high, _SCALAR):
            return low + (high - low) * self.random()
        return self.gen.uniform(low, high, size)

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: int | tuple[int, ...] | None = None
               ) -> float | np.ndarray:
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
            cum = list(itertools.accumulate(float(q) for q in p))
            k = min(bisect.bisect_right(cum, self.random() * cum[-1]), n - 1)
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


class IndexedStreams:
    """Independent, reproducible generators per sample index from one seed sequence.

    Philox keyed by the seed sequence, with the index in the top word of the 256-bit counter: the
    streams of different indices are 2**192 draws apart. One bit generator is re-seated per call,
    which is much cheaper than building a generator; a returned BlockRng is therefore valid until
    the next call (one sample at a time, as a dataset's __getitem__ uses it).
    """

    def __init__(self, seed_seq: np.random.SeedSequence) -> None:
        self.key = seed_seq.generate_state(2, np.uint64)
        self._bits = np.random.Philox(key=self.key)
        self._gen = np.random.Generator(self._bits)

    def __call__(self, index: int) -> BlockRng:
        """The generator of ``index`` (>= 0), positioned at its first draw."""
        self._bits.state = {"bit_generator": "Philox",
                            "state": {"counter": np.array([0, 0, 0, index % 2**64], dtype=np.uint64), "key": self.key},
                            "buffer": _EMPTY_BUFFER, "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        return BlockRng(self._gen)


_EMPTY_BUFFER = np.zeros(4, dtype=np.uint64)
