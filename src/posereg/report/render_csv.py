"""CSV report (long format): header facts, one line per cell, claim, claim pair and per-part value."""

from __future__ import annotations

import csv
import io

from posereg.report.breakdown import breakdowns
from posereg.report.claims import PairResult
from posereg.report.runinfo import header_lines
from posereg.report.table import Table, table_values
from posereg.report.wide import claims_summary

FIELDS = ["kind", "row", "column", "metric", "mean", "std", "n", "expected", "paper", "delta", "ci_low", "ci_high",
          "test", "verdict", "unit", "status"]


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _pair(kind: str, claim: str, p: PairResult, unit: str) -> dict[str, str]:
    return {"kind": kind, "unit": unit, "row": claim, "column": p.pair.label or p.pair.text(), "metric": p.pair.metric,
            "mean": _num(p.ours), "n": p.seeds_text, "paper": _num(p.pair.paper), "ci_low": _num(p.low),
            "ci_high": _num(p.high), "test": p.test, "verdict": p.verdict,
            "status": "mixed commits" if p.marked else ""}


def render_csv(table: Table) -> str:
    """The report as CSV text (long format)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n", restval="")
    w.writeheader()
    for line in [claims_summary(table), *header_lines(table)]:
        if line:
            w.writerow({"kind": "info", "status": line})
    for rk in table.row_keys:
        for ck in table.col_keys:
            for m in table.metrics:
                v = table_values(table, rk, ck, m.name)
                cell = table.cells[(rk, ck, m.name)]
                status = ";".join(f"{k}={n}" for k, n in cell.statuses.items() if n)
                w.writerow({"kind": "cell", "row": table.row_label(rk), "column": table.col_label(ck),
                            "metric": m.name, "mean": _num(v["mean"]), "std": _num(v["std"]), "n": v["n"],
                            "expected": v["expected"], "paper": _num(v["paper"]), "delta": _num(v["delta"]),
                            "status": status + (";mixed commits" if v["marked"] else "")})
    for r in table.claims:
        if r.claim.is_group:
            w.writerow({"kind": "claim", "row": r.label, "column": r.scope,
                        "verdict": r.verdict})
            for p in r.pairs:
                w.writerow(_pair("claim_pair", r.label, p, r.claim.kind))
        else:
            w.writerow(_pair("claim", r.label, r.pairs[0], r.claim.kind))
    for b in breakdowns(table):
        for name, values in b.rows:
            for col, value in zip(b.columns, values, strict=True):
                w.writerow({"kind": "breakdown", "row": name, "column": col, "metric": b.title, "mean": _num(value)})
    return buf.getvalue()
