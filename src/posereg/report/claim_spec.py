"""Paper claims as data: the `table.claims` entries of a template, parsed and checked against its cells.

The YAML schema is documented in posereg.report.template; the verdicts come from posereg.report.claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from posereg.errors import ConfigError
from posereg.report.paper import resolve

if TYPE_CHECKING:
    from posereg.report.template import Template

KINDS = ("difference", "reduction_pct", "equivalence")
EXPECTS = ("a > b", "a < b", "a better", "a worse")
EACH = ("rows", "columns")
# when the paper's value can be set against ours: `relative` (a % claim, dataset-free), `protocol` (only on runs
# that follow the paper's data and protocol), `none` (never); default: relative for reduction_pct, else protocol
MAGNITUDES = ("relative", "protocol", "none")
KEYS = {"label", "a", "b", "pairs", "each", "metric", "metrics", "paper", "expect", "kind", "mode", "margin",
        "magnitude"}


@dataclass(frozen=True)
class CellRef:
    """A table cell by its row and column labels (column '' without column groups)."""

    row: str
    col: str = ""

    def text(self) -> str:
        """`I1`, `I1 (a)`, `MS-I1 stage 2`."""
        return f"{self.row} {self.col}".strip()


@dataclass(frozen=True)
class Term:
    """One side of a claim: a cell, or the difference `plus - minus` of two cells."""

    plus: CellRef
    minus: CellRef | None = None

    def cells(self) -> list[tuple[int, CellRef]]:
        """(sign, cell) pairs whose signed sum is the term."""
        return [(1, self.plus)] + ([(-1, self.minus)] if self.minus else [])

    def text(self) -> str:
        """`I1` or `(H1 (a) − H1 (b))`."""
        return f"({self.plus.text()} − {self.minus.text()})" if self.minus else self.plus.text()


@dataclass
class ClaimPair:
    """One tested contrast a - b on one metric, with the expected sign (+1: a > b) and the paper's value."""

    metric: str
    a: Term
    b: Term
    expect: int
    paper: float | None = None
    paper_source: str = ""
    label: str = ""

    def cells(self) -> list[tuple[int, CellRef]]:
        """(sign, cell) pairs whose signed sum is a - b."""
        return self.a.cells() + [(-sign, c) for sign, c in self.b.cells()]

    def text(self) -> str:
        """`I1 − H1`."""
        return f"{self.a.text()} − {self.b.text()}"


@dataclass
class Claim:
    """A paper claim: one pair, or a group of pairs that must all hold."""

    label: str
    pairs: list[ClaimPair]
    kind: str = "difference"
    expect: str = ""
    margin: float | None = None
    magnitude: str = "protocol"

    @property
    def is_equivalence(self) -> bool:
        """True for a claim of smallness ("by 0.5 only", "comparable"): a TOST against `margin`."""
        return self.kind == "equivalence"

    @property
    def is_group(self) -> bool:
        """True when the claim holds only if each of several pairs does."""
        return len(self.pairs) > 1


def _partial(ref: Any, name: str) -> tuple[dict[str, str], dict[str, str] | None]:
    """A side as written: `ROW` or {row, col, minus: {row, col}} -> (plus, minus) label dicts."""
    if isinstance(ref, str | int | float) and not isinstance(ref, bool):
        return {"row": str(ref)}, None
    if not isinstance(ref, dict) or set(ref) - {"row", "col", "minus"} or not set(ref) & {"row", "col"}:
        raise ConfigError(f"{name}: a side is a row label or {{row: ..., col: ..., minus: {{...}}}}, got {ref!r}")
    plus = {k: str(ref[k]) for k in ("row", "col") if k in ref}
    if ref.get("minus") is None:
        return plus, None
    minus, nested = _partial(ref["minus"], name)
    if nested is not None:
        raise ConfigError(f"{name}: `minus` takes a cell, not another difference")
    return plus, minus


class _Labels:
    """The template's row and column labels, to resolve and check cell references."""

    def __init__(self, t: Template, name: str) -> None:
        self.rows = [t.rows.label(k) for k in t.row_keys()]
        self.cols = [t.columns.label(k) for k in t.col_keys()] if t.columns else []
        self.name = name

    def cell(self, part: dict[str, str], each: str | None, label: str) -> CellRef:
        part = dict(part)
        if each is not None:
            key = "row" if each == "rows" else "col"
            if key in part:
                raise ConfigError(f"{self.name}: with `each: {each}` a side must not name its {key}")
            part[key] = label
        if "row" not in part:
            raise ConfigError(f"{self.name}: a side names no row")
        if part["row"] not in self.rows:
            raise ConfigError(f"{self.name}: row {part['row']!r} is not a row of the table ({', '.join(self.rows)})")
        if not self.cols:
            if part.get("col"):
                raise ConfigError(f"{self.name}: the table has no columns, but a side names column {part['col']!r}")
            return CellRef(part["row"])
        if part.get("col") not in self.cols:
            raise ConfigError(f"{self.name}: column {part.get('col')!r} is not a column of the table "
                              f"({', '.join(self.cols)})")
        return CellRef(part["row"], part["col"])

    def term(self, ref: Any, each: str | None, label: str) -> Term:
        plus, minus = _partial(ref, self.name)
        return Term(self.cell(plus, each, label), self.cell(minus, each, label) if minus is not None else None)


def _number(value: Any, name: str) -> float | None:
    try:
        v = resolve(value)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name}: the paper's value must be a number, a `ref:` path or null, got {v!r}")
    return float(v)


def _from_paper_cells(t: Template, metric: str, kind: str, a: Term, b: Term) -> float | None:
    """The paper's value of a - b (or its reduction) from the table's paper cells, when all are known."""
    values = {}
    for _, cell in a.cells() + b.cells():
        v = resolve(t.paper.get((cell.row, cell.col, metric)))
        if not isinstance(v, int | float) or isinstance(v, bool):
            return None
        values[cell] = float(v)
    if kind == "reduction_pct":
        vb = values[b.plus]
        return round(100.0 * (vb - values[a.plus]) / vb, 10) if vb else None
    return round(sum(s * values[c] for s, c in a.cells()) - sum(s * values[c] for s, c in b.cells()), 10)


def _expect(text: Any, higher_is_better: bool, paper: float | None, kind: str, name: str) -> int:
    if kind == "equivalence":
        if text is not None:
            raise ConfigError(f"{name}: an equivalence claim states a margin, not `expect`")
        return 1 if paper is None or paper >= 0 else -1
    if text is None:
        if not paper:
            raise ConfigError(f"{name}: give `expect` ({' | '.join(EXPECTS)}) or a non-zero paper difference")
        sign = 1 if paper > 0 else -1
        return -sign if kind == "reduction_pct" else sign
    words = " ".join(str(text).split())
    if words not in EXPECTS:
        raise ConfigError(f"{name}: expect must be one of {' | '.join(EXPECTS)}, got {text!r}")
    if words in ("a > b", "a < b"):
        return 1 if words == "a > b" else -1
    better = 1 if higher_is_better else -1
    return better if words == "a better" else -better


def _metrics(c: dict, t: Template, name: str) -> list[tuple[str, Any, bool]]:
    """(metric name, stated paper value, whether a value was stated) for `metric` or `metrics`."""
    if ("metric" in c) == ("metrics" in c):
        raise ConfigError(f"{name}: give exactly one of `metric` or `metrics`")
    raw = c["metrics"] if "metrics" in c else [c["metric"]]
    items = list(raw.items()) if isinstance(raw, dict) else [(m, None) for m in raw]
    out = []
    for metric, paper in items:
        spec = next((m for m in t.metrics if str(metric) in (m.name, m.label)), None)
        if spec is None:
            raise ConfigError(f"{name}: metric {metric!r} is not in table.metrics")
        out.append((spec.name, paper, isinstance(raw, dict)))
    return out


def _parse_claim(c: dict, t: Template, where: str) -> Claim | None:
    name = f"{where}: claim {c.get('label')!r}"
    if "label" not in c:
        raise ConfigError(f"{where}: every entry of table.claims needs a `label`")
    unknown = sorted(set(c) - KEYS)
    if unknown:
        raise ConfigError(f"{name}: unknown keys {unknown}; allowed: {sorted(KEYS)}")
    mode = c.get("mode")
    if mode not in (None, "cpu", "real"):
        raise ConfigError(f"{name}: mode must be cpu or real, got {mode!r}")
    if mode is not None and (mode == "real") != t.is_real:
        return None
    kind = str(c.get("kind", "difference"))
    if kind not in KINDS:
        raise ConfigError(f"{name}: kind must be one of {KINDS}, got {kind!r}")
    margin = _margin(c, kind, name)
    magnitude = str(c.get("magnitude", "relative" if kind == "reduction_pct" else "protocol"))
    if magnitude not in MAGNITUDES:
        raise ConfigError(f"{name}: magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    each = c.get("each")
    if each not in (None, *EACH) or (each == "columns" and t.columns is None):
        raise ConfigError(f"{name}: each must be `rows` or `columns` (a table with columns), got {each!r}")
    if ("pairs" in c) == ("a" in c or "b" in c) or ("a" in c) != ("b" in c):
        raise ConfigError(f"{name}: give `a` and `b`, or a list of `pairs`")
    sides = c["pairs"] if "pairs" in c else [{"a": c["a"], "b": c["b"]}]
    if not isinstance(sides, list) or not sides or not all(isinstance(p, dict) and "a" in p and "b" in p
                                                             for p in sides):
        raise ConfigError(f"{name}: `pairs` is a list of {{a: ..., b: ..., paper: ...}}")
    labels = _Labels(t, name)
    each_labels = (labels.rows if each == "rows" else labels.cols) if each else [""]
    metrics = _metrics(c, t, name)
    expanded = len(sides) * len(each_labels)
    if expanded > 1 and ("paper" in c or any(stated and paper is not None for _, paper, stated in metrics)):
        raise ConfigError(f"{name}: with several pairs give the paper's value per pair (pairs: [{{..., paper: }}])")
    pairs = []
    for metric, metric_paper, stated in metrics:
        spec = t.metric(metric)
        for side in sides:
            for each_label in each_labels:
                a, b = labels.term(side["a"], each, each_label), labels.term(side["b"], each, each_label)
                if kind == "reduction_pct" and (a.minus or b.minus):
                    raise ConfigError(f"{name}: reduction_pct compares two cells, not differences")
                raw = side["paper"] if "paper" in side else metric_paper if stated else c.get("paper")
                paper, source = _number(raw, name), "stated"
                if paper is None:
                    paper, source = _from_paper_cells(t, metric, kind, a, b), "paper's cells"
                text = [each_label or side.get("label") or (f"{a.text()} vs {b.text()}" if len(sides) > 1 else "")]
                if len(metrics) > 1:
                    text.append(spec.label)
                pairs.append(ClaimPair(metric=metric, a=a, b=b, paper=paper,
                                       paper_source=source if paper is not None else "",
                                       expect=_expect(c.get("expect"), spec.higher_is_better, paper, kind, name),
                                       label=", ".join(x for x in text if x)))
    return Claim(label=str(c["label"]), pairs=pairs, kind=kind, expect=str(c.get("expect") or ""), margin=margin,
                 magnitude=magnitude)


def _margin(c: dict, kind: str, name: str) -> float | None:
    """The equivalence margin (> 0, in the metric's units) of an equivalence claim; refused on other kinds."""
    if kind != "equivalence":
        if "margin" in c:
            raise ConfigError(f"{name}: `margin` belongs to `kind: equivalence` claims")
        return None
    margin = c.get("margin")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin > 0:
        raise ConfigError(f"{name}: an equivalence claim needs `margin`: a positive number in the metric's units "
                          f"(the largest |a - b| that still counts as comparable), got {margin!r}")
    return float(margin)


def parse_claims(raw: Any, t: Template, where: str) -> list[Claim]:
    """`table.claims` -> Claims (those of the other mode left out); ConfigError naming a claim that is wrong."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: table.claims must be a list")
    out = []
    for c in raw:
        if not isinstance(c, dict):
            raise ConfigError(f"{where}: table.claims entries are mappings, got {c!r}")
        claim = _parse_claim(c, t, where)
        if claim is not None:
            out.append(claim)
    return out
