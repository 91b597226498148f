"""Two grids (or runs) side by side: A, B and B − A for every cell both tables have."""

from __future__ import annotations

import csv
import io
from html import escape
from pathlib import Path

from posereg.report.table import Table, format_cell, format_number


def compare_rows(a: Table, b: Table) -> list[dict]:
    """One dict per (row, column, metric) present in both tables, matched by labels and metric name."""
    b_cells = {(b.row_label(rk), b.col_label(ck), m): c for (rk, ck, m), c in b.cells.items()}
    rows = []
    for (rk, ck, m), ca in a.cells.items():
        key = (a.row_label(rk), a.col_label(ck), m)
        cb = b_cells.get(key)
        if cb is None:
            continue
        spec = a.template.metric(m)
        diff = None if ca.mean is None or cb.mean is None else cb.mean - ca.mean
        rows.append({"row": key[0], "column": key[1], "metric": m, "label": spec.label, "a": ca, "b": cb,
                     "diff": diff, "decimals": spec.decimals})
    return rows


def render_compare(a: Table, b: Table, name_a: str, name_b: str, out: Path) -> dict[str, Path]:
    """Write compare.md, compare.csv and compare.html into `out`."""
    rows = compare_rows(a, b)
    out.mkdir(parents=True, exist_ok=True)
    header = ["row", "column", "metric", name_a, name_b, f"{name_b} − {name_a}"]
    text_rows = [[r["row"], r["column"], r["label"], format_cell(r["a"], r["decimals"]),
                  format_cell(r["b"], r["decimals"]), format_number(r["diff"], r["decimals"], sign=True)]
                 for r in rows]
    md = [f"# {name_a} vs {name_b}", "", f"A: {a.status_line()}  ", f"B: {b.status_line()}", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(t) + " |" for t in text_rows]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "column", "metric", "mean_a", "std_a", "n_a", "mean_b", "std_b", "n_b", "diff"])
    for r in rows:
        w.writerow([r["row"], r["column"], r["metric"], r["a"].mean, r["a"].std, r["a"].n, r["b"].mean,
                    r["b"].std, r["b"].n, r["diff"]])
    html = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>compare</title></head><body>",
            f"<h1>{escape(name_a)} vs {escape(name_b)}</h1><table border='1' cellpadding='4'>",
            "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    html += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in t) + "</tr>" for t in text_rows]
    html.append("</table></body></html>")
    files = {"md": out / "compare.md", "csv": out / "compare.csv", "html": out / "compare.html"}
    files["md"].write_text("\n".join(md) + "\n", encoding="utf-8")
    files["csv"].write_text(buf.getvalue(), encoding="utf-8")
    files["html"].write_text("\n".join(html), encoding="utf-8")
    return files
