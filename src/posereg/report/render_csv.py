"""CSV report: one line per (row, column, metric) cell and per paper claim, numbers unrounded."""

from __future__ import annotations

import csv
import io

from posereg.report.table import Table, table_values

FIELDS = ["kind", "row", "column", "metric", "mean", "std", "n", "expected", "paper", "delta", "status"]


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def render_csv(table: Table) -> str:
    """The report as CSV text (long format)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for rk in table.row_keys:
        for ck in table.col_keys:
            for m in table.metrics:
                v = table_values(table, rk, ck, m.name)
                cell = table.cells[(rk, ck, m.name)]
                status = ";".join(f"{k}={n}" for k, n in cell.statuses.items() if n)
                w.writerow(
                    ["cell", table.row_label(rk), table.col_label(ck), m.name, _num(v["mean"]), _num(v["std"]),
                     v["n"], v["expected"], _num(v["paper"]), _num(v["delta"]), status]
                )
    for c in table.comparisons:
        w.writerow(["comparison", c.label, "", c.metric.name, _num(c.ours), "", "", "", _num(c.paper),
                    _num(c.delta), c.kind])
    return buf.getvalue()
