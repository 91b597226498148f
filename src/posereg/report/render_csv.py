"""CSV report (long format): header facts, one line per cell, claim, claim pair and per-part value."""

from __future__ import annotations

import csv
import io
import itertools

from posereg.report.breakdown import breakdowns
from posereg.report.claims import PairResult
from posereg.report.table import Table, table_values
from posereg.report.wide import report_header

FIELDS = ["kind", "budget", "row", "column", "metric", "mean", "std", "n", "expected", "paper", "delta", "ci_low",
          "ci_high", "confidence", "test", "p", "p_holm", "verdict", "magnitude", "unit", "status"]


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _pair(kind: str, claim: str, p: PairResult, unit: str, budget: str) -> dict[str, str]:
    status = ";".join(s for s, on in (("mixed commits", p.marked), ("still rising", p.rising)) if on)
    return {"kind": kind, "budget": budget, "unit": unit, "row": claim, "column": p.pair.label or p.pair.text(),
            "metric": p.pair.metric, "mean": _num(p.ours), "n": p.seeds_text, "paper": _num(p.pair.paper),
            "ci_low": _num(p.low), "ci_high": _num(p.high), "confidence": _num(p.confidence) if p.low is not None
            else "", "test": p.test, "p": _num(p.p), "p_holm": _num(p.p_holm), "verdict": p.verdict,
            "magnitude": p.magnitude, "status": status}


def _claims(w: csv.DictWriter, table: Table) -> None:
    for r in table.claims:
        if r.claim.is_group:
            w.writerow({"kind": "claim", "budget": table.budget, "row": r.label, "column": r.scope,
                        "verdict": r.verdict, "status": "budget-sensitive" if r.budget_sensitive else ""})
            for p in r.pairs:
                w.writerow(_pair("claim_pair", r.label, p, r.claim.kind, table.budget))
        else:
            row = _pair("claim", r.label, r.pairs[0], r.claim.kind, table.budget)
            row["status"] = ";".join(x for x in (row["status"], "budget-sensitive" if r.budget_sensitive else "") if x)
            w.writerow(row)


def _cells(w: csv.DictWriter, table: Table) -> None:
    for rk in table.row_keys:
        for ck in table.col_keys:
            for m in table.metrics:
                v = table_values(table, rk, ck, m.name)
                cell = table.cells[(rk, ck, m.name)]
                status = ";".join(f"{k}={n}" for k, n in cell.statuses.items() if n)
                w.writerow({"kind": "cell", "budget": table.budget, "row": table.row_label(rk),
                            "column": table.col_label(ck), "metric": m.name, "mean": _num(v["mean"]),
                            "std": _num(v["std"]), "n": v["n"], "expected": v["expected"], "paper": _num(v["paper"]),
                            "delta": _num(v["delta"]), "status": status + (";mixed commits" if v["marked"] else "")})


def render_csv(table: Table) -> str:
    """The report as CSV text (long format)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n", restval="")
    w.writeheader()
    for line in report_header(table):
        if line:
            w.writerow({"kind": "info", "status": line})
    _cells(w, table)
    for t in (table, *table.others):
        if t is not table:
            _cells(w, t)
        _claims(w, t)
        for (rk, ck), conv in ((k, t.convergence[k]) for k in itertools.product(t.row_keys, t.col_keys)
                               if k in t.convergence):
            w.writerow({"kind": "convergence", "budget": t.budget, "row": t.row_label(rk), "column": t.col_label(ck),
                        "metric": conv.metric, "mean": _num(conv.gain), "std": _num(conv.gain_std), "n": conv.n,
                        "paper": "", "status": "still rising" if conv.rising else "flat"})
    for b in breakdowns(table):
        for name, values in b.rows:
            for col, value in zip(b.columns, values, strict=True):
                w.writerow({"kind": "breakdown", "row": name, "column": col, "metric": b.title, "mean": _num(value)})
    return buf.getvalue()
