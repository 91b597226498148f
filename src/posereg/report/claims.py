"""Verdicts on paper claims: direction, equivalence and magnitude, from intervals over seeds.

Each pair a - b is a signed sum of cell means. When every cell involved has the same seeds the runs are paired
by seed (paired t interval of the per-seed contrast, df = n - 1); otherwise the cells are independent groups
(Welch's t interval; for a difference of differences its Welch-Satterthwaite extension). A % reduction
(`reduction_pct`, 100 (b - a) / b) is the paired t interval of the per-seed ratios, or with unpaired seeds the
delta method, so the denominator's seed variance is in its interval.

* **Direction** (difference, reduction_pct): *reproduced* when the 95 % interval excludes 0 on the expected
  side, *contradicted* on the other, else *inconclusive*; with fewer than 3 seeds in a cell, no verdict.
* **Equivalence** (claims of smallness: "by 0.5 only", "slightly", "comparable"): two one-sided tests against
  the template's margin: *reproduced* when the 90 % interval lies inside (-margin, margin), *contradicted* when
  it lies wholly beyond one margin (the difference is larger than "comparable" allows), else *inconclusive*.
* **Magnitude**, per pair, only where the paper's value is comparable with ours (a relative % claim, or runs
  on the paper's data and protocol; the claim's `magnitude:` says which): *consistent* when the paper's value
  lies inside our interval, else *smaller* / *larger than the paper* (our effect, in the claimed direction);
  otherwise *not comparable* — never an implied agreement.

A group claim is reproduced only if every pair is (an intersection-union test: no correction needed), and
contradicted if some pair is after Holm's correction over the group's pairs (a pair whose contradiction does
not survive it reads inconclusive).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from posereg.report.claim_spec import Claim, ClaimPair, Term
from posereg.report.stats import (
    ALPHA,
    EQUIVALENCE_CONFIDENCE,
    MIN_SEEDS,
    PAIRED,
    PAIRED_RATIO,
    Estimate,
    contrast,
    holm,
    reduction,
    tost_p,
)

if TYPE_CHECKING:
    from posereg.report.table import Cell, Table

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
FEW_SEEDS = f"n < {MIN_SEEDS} seeds: no verdict"
NOT_PRODUCED = "not produced by these runs"
DIRECTION_VERDICTS = (REPRODUCED, INCONCLUSIVE, CONTRADICTED)

CONSISTENT = "consistent"
SMALLER = "smaller than the paper"
LARGER = "larger than the paper"
NOT_COMPARABLE = "not comparable"
NO_PAPER = ""  # the paper states no value for this pair
MAGNITUDE_VERDICTS = (CONSISTENT, SMALLER, LARGER)


@dataclass
class PairResult:
    """One pair checked on our runs, in the claim's unit (difference, or reduction in %)."""

    pair: ClaimPair
    verdict: str
    ours: float | None = None
    low: float | None = None
    high: float | None = None
    estimate: Estimate | None = None
    seeds: tuple[int, ...] = ()
    marked: bool = False
    magnitude: str = NO_PAPER
    p: float | None = None
    p_holm: float | None = None
    components: list[tuple[str, Estimate]] = field(default_factory=list)
    rising: bool = False
    confidence: float = 0.95

    @property
    def test(self) -> str:
        """`paired t`, `Welch t`, ... ('' without an interval)."""
        return self.estimate.test if self.estimate and self.low is not None else ""

    @property
    def seeds_text(self) -> str:
        """Seeds behind the numbers: `3` (paired, or as many in every cell) or `3/4` (per cell)."""
        if self.estimate is not None and self.estimate.test in (PAIRED, PAIRED_RATIO):
            return str(self.estimate.n[0])
        if not self.seeds:
            return ""
        return str(self.seeds[0]) if len(set(self.seeds)) == 1 else "/".join(str(n) for n in self.seeds)


def budget_sensitivity(verdicts: Iterable[str]) -> bool | None:
    """Whether the verdicts at several budgets differ; None when fewer than two budgets give a verdict
    (a budget without one says nothing either way)."""
    given = [v for v in verdicts if v in DIRECTION_VERDICTS]
    return None if len(given) < 2 else len(set(given)) > 1


@dataclass
class ClaimResult:
    """A claim with the verdict of each pair and its own."""

    claim: Claim
    pairs: list[PairResult]
    verdict: str
    # filled when the grid ran at several budgets: the verdict at each, and whether they differ
    by_budget: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The claim in words."""
        return self.claim.label

    @property
    def budget_sensitive(self) -> bool:
        """True when the claim has a verdict at two budgets or more and they differ."""
        return budget_sensitivity(self.by_budget.values()) is True

    @property
    def budgets_compared(self) -> bool:
        """True when two budgets or more give the claim a verdict (so its budget sensitivity is known)."""
        return budget_sensitivity(self.by_budget.values()) is not None

    @property
    def scope(self) -> str:
        """What a group verdict covers: `all of 4 pairs`, or `all of 2 produced pairs (2 of 4 not produced)`."""
        missing = sum(p.verdict == NOT_PRODUCED for p in self.pairs)
        if not missing or missing == len(self.pairs):
            return f"all of {len(self.pairs)} pairs"
        return f"all of {len(self.pairs) - missing} produced pairs ({missing} of {len(self.pairs)} not produced)"


def _direction(low: float, high: float, expect: int) -> str:
    seen = 1 if low > 0 else -1 if high < 0 else 0
    if seen == 0:
        return INCONCLUSIVE
    return REPRODUCED if seen == expect else CONTRADICTED


def _equivalence(est: Estimate, margin: float) -> tuple[str, float]:
    """Verdict and the p-value that decides it (TOST for `reproduced`, one-sided |d| > margin otherwise)."""
    low, high = est.interval(EQUIVALENCE_CONFIDENCE)
    if -margin < low and high < margin:
        return REPRODUCED, tost_p(est, margin)
    beyond = low >= margin or high <= -margin
    return (CONTRADICTED if beyond else INCONCLUSIVE), _beyond_p(est, margin)


def _beyond_p(est: Estimate, margin: float) -> float:
    """One-sided p of |mean| > margin on the side the mean lies (the 90 % interval clears the margin iff < 0.05)."""
    from scipy import stats

    if est.df is None or est.se in (0.0, float("inf")):
        return 0.0 if est.se == 0.0 and abs(est.mean) > margin else 1.0
    return float(stats.t.sf((abs(est.mean) - margin) / est.se, est.df))


def _magnitude(claim: Claim, pair: ClaimPair, low: float, high: float, expect: int, protocol_matches: bool | None,
               ) -> str:
    if pair.paper is None:
        return NO_PAPER
    comparable = claim.magnitude == "relative" or (claim.magnitude == "protocol" and protocol_matches is True)
    if not comparable:
        return NOT_COMPARABLE
    if low <= pair.paper <= high:
        return CONSISTENT
    _, hi = sorted((expect * low, expect * high))
    return SMALLER if expect * pair.paper > hi else LARGER


def _side_estimate(table: Table, term: Term, metric: str) -> Estimate | None:
    cells = [(s, table.cell_at(c.row, c.col, metric)) for s, c in term.cells()]
    if any(c is None or c.n < MIN_SEEDS for _, c in cells):
        return None
    return contrast([(s, c.by_seed) for s, c in cells])  # type: ignore[union-attr]


def _components(table: Table, pair: ClaimPair) -> list[tuple[str, Estimate]]:
    """Both underlying differences of a difference of differences (so nobody reads it as 'both dropped')."""
    if not (pair.a.minus or pair.b.minus):
        return []
    out = []
    for term in (pair.a, pair.b):
        est = _side_estimate(table, term, pair.metric)
        if est is not None:
            text = term.text()
            out.append((text[1:-1] if term.minus else text, est))
    return out


def check_pair(table: Table, pair: ClaimPair, claim: Claim) -> PairResult:
    """Our value, interval, direction (or equivalence) verdict and magnitude verdict for one pair."""
    cells: list[tuple[int, Cell | None]] = [(s, table.cell_at(c.row, c.col, pair.metric)) for s, c in pair.cells()]
    present = [(s, c) for s, c in cells if c is not None]
    if present and len(present) == len(cells) and any(c.expected == 0 and c.n == 0 for _, c in present):
        return PairResult(pair, NOT_PRODUCED)
    seeds = tuple(c.n if c else 0 for _, c in cells)
    marked = any(table.is_marked(c) for _, c in present)
    rising = any(table.is_rising(c.row, c.col) for _, c in pair.cells())
    if len(present) < len(cells) or min(seeds) == 0:
        return PairResult(pair, FEW_SEEDS, seeds=seeds, marked=marked, rising=rising)
    expect = pair.expect
    if claim.kind == "reduction_pct":
        a, b = (c.by_seed for _, c in present)  # type: ignore[union-attr]
        est = reduction(a, b)
        mean_b = present[1][1].mean or 0.0  # type: ignore[union-attr]
        expect = -pair.expect if mean_b > 0 else pair.expect  # a better (a < b) is a positive reduction
        if est is None:
            return PairResult(pair, FEW_SEEDS, seeds=seeds, marked=marked, rising=rising)
    else:
        est = contrast([(s, c.by_seed) for s, c in present])  # type: ignore[union-attr]
    few = min(seeds) < MIN_SEEDS or (est.test in (PAIRED, PAIRED_RATIO) and est.n[0] < MIN_SEEDS)
    confidence = EQUIVALENCE_CONFIDENCE if claim.is_equivalence else 0.95
    low, high = est.interval(confidence)
    base = PairResult(pair, FEW_SEEDS, est.mean, None, None, est, seeds, marked, rising=rising,
                      components=_components(table, pair), confidence=confidence)
    if few:
        return base
    if claim.is_equivalence:
        base.verdict, base.p = _equivalence(est, float(claim.margin or 0.0))
    else:
        base.verdict, base.p = _direction(low, high, expect), est.p_value()
    base.low, base.high = low, high
    base.magnitude = _magnitude(claim, pair, low, high, expect, table.protocol.matches)
    return base


def apply_holm(pairs: list[PairResult]) -> None:
    """Within a group claim: a contradicted pair stays contradicted only if Holm's adjusted p < alpha."""
    tested = [p for p in pairs if p.p is not None]
    if len(tested) < 2:
        return
    for p, adjusted in zip(tested, holm([p.p for p in tested]), strict=True):  # type: ignore[misc]
        p.p_holm = adjusted
        if p.verdict == CONTRADICTED and adjusted >= ALPHA:
            p.verdict = INCONCLUSIVE


def group_verdict(verdicts: list[str]) -> str:
    """Every pair reproduced -> reproduced; any contradicted -> contradicted; else inconclusive."""
    counted = [v for v in verdicts if v != NOT_PRODUCED]
    if not counted:
        return NOT_PRODUCED
    if CONTRADICTED in counted:
        return CONTRADICTED
    if FEW_SEEDS in counted:
        return FEW_SEEDS
    return REPRODUCED if all(v == REPRODUCED for v in counted) else INCONCLUSIVE


def evaluate_claims(table: Table) -> list[ClaimResult]:
    """Every claim of the table's template, checked on its cells."""
    out = []
    for claim in table.template.claims:
        pairs = [check_pair(table, p, claim) for p in claim.pairs]
        if claim.is_group:
            apply_holm(pairs)
        out.append(ClaimResult(claim, pairs, group_verdict([p.verdict for p in pairs])))
    return out


def _counts(verdicts: list[str], order: tuple[str, ...]) -> str:
    return ", ".join(f"{sum(v == w for v in verdicts)} {w}" for w in order)


def summary_line(results: list[ClaimResult]) -> str:
    """Direction, equivalence and magnitude counted separately, e.g. `direction: 5 of 6 claims reproduced,
    1 inconclusive, 0 contradicted; magnitude (4 pairs with a comparable paper value): 1 consistent, ...`."""
    if not results:
        return ""
    parts = []
    for kind, results_of_kind in (("direction", [r for r in results if not r.claim.is_equivalence]),
                                  ("equivalence", [r for r in results if r.claim.is_equivalence])):
        if not results_of_kind:
            continue
        verdicts = [r.verdict for r in results_of_kind]
        n = len(results_of_kind)
        text = f"{kind}: {sum(v == REPRODUCED for v in verdicts)} of {n} claim{'s' if n > 1 else ''} reproduced, " \
               f"{sum(v == INCONCLUSIVE for v in verdicts)} inconclusive, " \
               f"{sum(v == CONTRADICTED for v in verdicts)} contradicted"
        few, missing = sum(v == FEW_SEEDS for v in verdicts), sum(v == NOT_PRODUCED for v in verdicts)
        if few:
            text += f", {few} without a verdict (fewer than {MIN_SEEDS} seeds)"
        if missing:
            text += f", {missing} not produced by these runs"
        parts.append(text)
    pairs = [p for r in results for p in r.pairs]
    judged = [p.magnitude for p in pairs if p.magnitude in MAGNITUDE_VERDICTS]
    not_comparable = sum(p.magnitude == NOT_COMPARABLE for p in pairs)
    if judged or not_comparable:
        text = f"magnitude ({len(judged)} pair{'s' if len(judged) != 1 else ''} with a comparable paper value): " \
               + (_counts(judged, MAGNITUDE_VERDICTS) if judged else "none")
        if not_comparable:
            text += f"; {not_comparable} paper value{'s' if not_comparable > 1 else ''} not comparable"
        parts.append(text)
    sensitive, compared = sum(r.budget_sensitive for r in results), sum(r.budgets_compared for r in results)
    if any(r.by_budget for r in results):
        parts.append(f"budget-sensitive: {sensitive} of {compared} claim{'s' if compared > 1 else ''} judged at two "
                     "budgets" if compared else "budget sensitivity unknown (no claim has a verdict at two budgets)")
    return "; ".join(parts)
