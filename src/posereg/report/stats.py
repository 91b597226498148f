"""95 % t intervals for a signed sum of cell means over seeds: paired by seed, or Welch-Satterthwaite."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
MIN_SEEDS = 3
PAIRED = "paired t"
WELCH = "Welch t"


@dataclass(frozen=True)
class Estimate:
    """Our value of a contrast: mean, 95 % interval, the test used and the seeds behind it."""

    mean: float
    low: float
    high: float
    test: str
    n: tuple[int, ...]
    df: float | None


def _t_half(se: float, df: float | None) -> float:
    if se == 0.0 or df is None:
        return 0.0
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2.0, df)) * se


def paired(diffs: list[float]) -> Estimate:
    """Paired t interval: the per-seed values of the contrast, df = n - 1."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(n) if n >= 2 else math.inf
    df = float(n - 1) if n >= 2 else None
    half = _t_half(se, df) if math.isfinite(se) else math.inf
    return Estimate(mean, mean - half, mean + half, PAIRED, (n,), df)


def welch(groups: list[tuple[int, list[float]]]) -> Estimate:
    """Welch-Satterthwaite interval of sum(sign * mean) over independent groups (two groups: Welch's t)."""
    mean = sum(sign * statistics.fmean(values) for sign, values in groups)
    if any(len(values) < 2 for _, values in groups):
        return Estimate(mean, -math.inf, math.inf, WELCH, tuple(len(v) for _, v in groups), None)
    parts = [statistics.variance(values) / len(values) for _, values in groups]
    var = sum(parts)
    df = var**2 / sum(p**2 / (len(v) - 1) for p, (_, v) in zip(parts, groups, strict=True)) if var > 0 else None
    half = _t_half(math.sqrt(var), df)
    return Estimate(mean, mean - half, mean + half, WELCH, tuple(len(v) for _, v in groups), df)


def contrast(cells: list[tuple[int, dict[str, float]]]) -> Estimate:
    """sum(sign * cell) over cells given as {seed key: value}: paired by seed when every cell has the same
    seeds, else Welch. Two cells with the same seeds give the paired t interval of a - b."""
    keys = [set(values) for _, values in cells]
    if all(k == keys[0] for k in keys) and len(keys[0]) >= 2:
        seeds = sorted(keys[0])
        return paired([sum(sign * values[s] for sign, values in cells) for s in seeds])
    return welch([(sign, list(values.values())) for sign, values in cells])
