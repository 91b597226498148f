"""Intervals and tests over seeds: paired or Welch t for a signed sum of cell means, per-seed or delta-method
ratios for % reductions, two one-sided tests (TOST) for equivalence, and Holm's step-down correction."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
# a TOST at level alpha = 0.05 is equivalent to a (1 - 2 alpha) = 90 % interval inside the margins
EQUIVALENCE_CONFIDENCE = 0.90
ALPHA = 1.0 - CONFIDENCE
MIN_SEEDS = 3
PAIRED = "paired t"
WELCH = "Welch t"
PAIRED_RATIO = "paired t of per-seed ratios"
DELTA_RATIO = "delta method, Welch df"


@dataclass(frozen=True)
class Estimate:
    """Our value of a contrast: mean, standard error, degrees of freedom, the test used and the seeds behind it."""

    mean: float
    se: float
    df: float | None
    test: str
    n: tuple[int, ...]

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The two-sided t interval at `confidence` ((-inf, inf) without degrees of freedom)."""
        if self.df is None or not math.isfinite(self.se):
            return -math.inf, math.inf
        half = float(stats.t.ppf(0.5 + confidence / 2.0, self.df)) * self.se if self.se > 0 else 0.0
        return self.mean - half, self.mean + half

    @property
    def low(self) -> float:
        """Lower end of the 95 % interval."""
        return self.interval()[0]

    @property
    def high(self) -> float:
        """Upper end of the 95 % interval."""
        return self.interval()[1]

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided p of the t test of mean = null (1 without degrees of freedom; 0 or 1 when se = 0)."""
        if self.df is None or not math.isfinite(self.se):
            return 1.0
        if self.se == 0.0:
            return 1.0 if self.mean == null else 0.0
        return float(2.0 * stats.t.sf(abs(self.mean - null) / self.se, self.df))

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (factor x mean, |factor| x se)."""
        return Estimate(self.mean * factor, self.se * abs(factor), self.df, self.test, self.n)


def paired(diffs: list[float], test: str = PAIRED) -> Estimate:
    """Paired t: the per-seed values of the contrast, df = n - 1."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return Estimate(mean, math.inf, None, test, (n,))
    return Estimate(mean, statistics.stdev(diffs) / math.sqrt(n), float(n - 1), test, (n,))


def _welch_df(parts: list[tuple[float, int]]) -> float | None:
    """Welch-Satterthwaite df of a sum of independent variance terms (term, sample size)."""
    var = sum(v for v, _ in parts)
    return var**2 / sum(v**2 / (n - 1) for v, n in parts) if var > 0 else None


def welch(groups: list[tuple[int, list[float]]]) -> Estimate:
    """Welch-Satterthwaite interval of sum(sign * mean) over independent groups (two groups: Welch's t)."""
    mean = sum(sign * statistics.fmean(values) for sign, values in groups)
    sizes = tuple(len(v) for _, v in groups)
    if any(n < 2 for n in sizes):
        return Estimate(mean, math.inf, None, WELCH, sizes)
    parts = [(statistics.variance(values) / len(values), len(values)) for _, values in groups]
    return Estimate(mean, math.sqrt(sum(v for v, _ in parts)), _welch_df(parts), WELCH, sizes)


def _paired_seeds(cells: list[dict[str, float]]) -> list[str] | None:
    """The seeds every cell shares when they all have the same ones (>= 2), else None."""
    keys = [set(values) for values in cells]
    return sorted(keys[0]) if all(k == keys[0] for k in keys) and len(keys[0]) >= 2 else None


def contrast(cells: list[tuple[int, dict[str, float]]]) -> Estimate:
    """sum(sign * cell) over cells given as {seed key: value}: paired by seed when every cell has the same
    seeds, else Welch. Two cells with the same seeds give the paired t interval of a - b."""
    seeds = _paired_seeds([values for _, values in cells])
    if seeds is not None:
        return paired([sum(sign * values[s] for sign, values in cells) for s in seeds])
    return welch([(sign, list(values.values())) for sign, values in cells])


def reduction(a: dict[str, float], b: dict[str, float]) -> Estimate | None:
    """The % reduction 100 (b - a) / b over seeds, with the denominator's seed variance in its interval.

    Paired seeds: the paired t interval of the per-seed ratios 100 (b_s - a_s) / b_s. Otherwise the delta
    method on 100 (1 - mean_a / mean_b) with Welch-Satterthwaite degrees of freedom. None when b is 0.
    """
    seeds = _paired_seeds([a, b])
    if seeds is not None:
        if any(b[s] == 0 for s in seeds):
            return None
        return paired([100.0 * (b[s] - a[s]) / b[s] for s in seeds], PAIRED_RATIO)
    va, vb = list(a.values()), list(b.values())
    ma, mb = statistics.fmean(va), statistics.fmean(vb)
    if mb == 0:
        return None
    mean = 100.0 * (1.0 - ma / mb)
    if len(va) < 2 or len(vb) < 2:
        return Estimate(mean, math.inf, None, DELTA_RATIO, (len(va), len(vb)))
    # d/d(ma) = -100 / mb, d/d(mb) = 100 ma / mb^2
    parts = [((100.0 / mb) ** 2 * statistics.variance(va) / len(va), len(va)),
             ((100.0 * ma / mb**2) ** 2 * statistics.variance(vb) / len(vb), len(vb))]
    return Estimate(mean, math.sqrt(sum(v for v, _ in parts)), _welch_df(parts), DELTA_RATIO, (len(va), len(vb)))


def tost_p(est: Estimate, margin: float) -> float:
    """p of the two one-sided tests of |mean| < margin (equivalence shown when p < alpha)."""
    if est.df is None or not math.isfinite(est.se):
        return 1.0
    if est.se == 0.0:
        return 0.0 if abs(est.mean) < margin else 1.0
    p_low = stats.t.sf((est.mean + margin) / est.se, est.df)  # H0: mean <= -margin
    p_high = stats.t.cdf((est.mean - margin) / est.se, est.df)  # H0: mean >= +margin
    return float(max(p_low, p_high))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): controls the family-wise error rate."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
