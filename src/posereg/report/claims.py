"""Verdicts on paper claims: our difference ± a 95 % t interval over seeds, against the paper's sign.

Each pair a - b is a signed sum of cell means. When every cell involved has the same seeds the runs are
paired by seed (paired t interval of the per-seed contrast, df = n - 1); otherwise the cells are independent
groups (Welch's t interval; for a difference of differences its Welch-Satterthwaite extension). The pair is
*reproduced* when the interval excludes 0 on the expected side, *contradicted* when it excludes 0 on the
other, else *inconclusive*; with fewer than 3 seeds in a cell there is no verdict. A group claim is
reproduced only if every pair is, contradicted if any pair is, else inconclusive (no verdict while a pair
lacks seeds). reduction_pct scales the difference and its interval by -100 / mean(b).
"""

from __future__ import annotations

from dataclasses import dataclass

from posereg.report.claim_spec import Claim, ClaimPair
from posereg.report.stats import MIN_SEEDS, PAIRED, Estimate, contrast
from posereg.report.table import Cell, Table

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
FEW_SEEDS = f"n < {MIN_SEEDS} seeds: no verdict"
NOT_PRODUCED = "not produced by these runs"


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

    @property
    def test(self) -> str:
        """`paired t` or `Welch t` ('' without an interval)."""
        return self.estimate.test if self.estimate and self.low is not None else ""

    @property
    def seeds_text(self) -> str:
        """Seeds behind the numbers: `3` (paired, or as many in every cell) or `3/4` (per cell)."""
        if self.estimate is not None and self.estimate.test == PAIRED:
            return str(self.estimate.n[0])
        if not self.seeds:
            return ""
        return str(self.seeds[0]) if len(set(self.seeds)) == 1 else "/".join(str(n) for n in self.seeds)


@dataclass
class ClaimResult:
    """A claim with the verdict of each pair and its own."""

    claim: Claim
    pairs: list[PairResult]
    verdict: str

    @property
    def label(self) -> str:
        """The claim in words."""
        return self.claim.label

    @property
    def scope(self) -> str:
        """What a group verdict covers: `all of 4 pairs`, or `all of 2 produced pairs (2 of 4 not produced)`."""
        missing = sum(p.verdict == NOT_PRODUCED for p in self.pairs)
        if not missing or missing == len(self.pairs):
            return f"all of {len(self.pairs)} pairs"
        return f"all of {len(self.pairs) - missing} produced pairs ({missing} of {len(self.pairs)} not produced)"


def _verdict(low: float, high: float, expect: int) -> str:
    seen = 1 if low > 0 else -1 if high < 0 else 0
    if seen == 0:
        return INCONCLUSIVE
    return REPRODUCED if seen == expect else CONTRADICTED


def check_pair(table: Table, pair: ClaimPair, kind: str) -> PairResult:
    """Our value, interval and verdict for one pair."""
    cells: list[tuple[int, Cell | None]] = [(s, table.cell_at(c.row, c.col, pair.metric)) for s, c in pair.cells()]
    present = [(s, c) for s, c in cells if c is not None]
    if present and len(present) == len(cells) and any(c.expected == 0 and c.n == 0 for _, c in present):
        return PairResult(pair, NOT_PRODUCED)
    seeds = tuple(c.n if c else 0 for _, c in cells)
    marked = any(table.is_marked(c) for _, c in present)
    if len(present) < len(cells) or min(seeds) == 0:
        return PairResult(pair, FEW_SEEDS, seeds=seeds, marked=marked)
    est = contrast([(s, c.by_seed) for s, c in present])  # type: ignore[union-attr]
    scale = 1.0
    if kind == "reduction_pct":
        mean_b = table.cell_at(pair.b.plus.row, pair.b.plus.col, pair.metric).mean  # type: ignore[union-attr]
        if not mean_b:
            return PairResult(pair, FEW_SEEDS, seeds=seeds, marked=marked)
        scale = -100.0 / mean_b
    ours = est.mean * scale
    if min(seeds) < MIN_SEEDS or (est.test == PAIRED and est.n[0] < MIN_SEEDS):
        return PairResult(pair, FEW_SEEDS, ours=ours, estimate=est, seeds=seeds, marked=marked)
    low, high = sorted((est.low * scale, est.high * scale))
    return PairResult(pair, _verdict(est.low, est.high, pair.expect), ours, low, high, est, seeds, marked)


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
        pairs = [check_pair(table, p, claim.kind) for p in claim.pairs]
        out.append(ClaimResult(claim, pairs, group_verdict([p.verdict for p in pairs])))
    return out


def summary_line(results: list[ClaimResult]) -> str:
    """`5 of 7 claims reproduced, 1 inconclusive, 1 contradicted` (+ claims without a verdict)."""
    if not results:
        return ""
    n = {v: sum(r.verdict == v for r in results) for v in (REPRODUCED, INCONCLUSIVE, CONTRADICTED, FEW_SEEDS,
                                                             NOT_PRODUCED)}
    text = f"{n[REPRODUCED]} of {len(results)} claims reproduced, {n[INCONCLUSIVE]} inconclusive, " \
           f"{n[CONTRADICTED]} contradicted"
    if n[FEW_SEEDS]:
        text += f", {n[FEW_SEEDS]} without a verdict (fewer than {MIN_SEEDS} seeds)"
    if n[NOT_PRODUCED]:
        text += f", {n[NOT_PRODUCED]} not produced by these runs"
    return text
