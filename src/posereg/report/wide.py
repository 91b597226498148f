"""The table as a grid of strings (header + body) shared by the Markdown, LaTeX and HTML renderers."""

from __future__ import annotations

from dataclasses import dataclass

from posereg.report.table import Table, format_cell, format_number


@dataclass
class Column:
    """One rendered column: its group (column-group label, '' for none) and header."""

    group: str
    header: str


def row_title(table: Table) -> str:
    """Header of the first column: the row axes or 'output'."""
    rows = table.template.rows
    return "output" if rows.is_outputs else " / ".join(rows.axes) or "run"


def wide(table: Table) -> tuple[list[Column], list[list[str]]]:
    """Columns (ours, then paper and Δ where the paper has numbers) and one string row per table row."""
    columns = [Column("", row_title(table))]
    for ck in table.col_keys:
        group = table.col_label(ck)
        for m in table.metrics:
            columns.append(Column(group, m.label))
            if table.has_paper(group, m.name):
                columns += [Column(group, f"{m.label} paper"), Column(group, "Δ")]
    body = []
    for rk in table.row_keys:
        line = [table.row_label(rk)]
        for ck in table.col_keys:
            group = table.col_label(ck)
            for m in table.metrics:
                cell = table.cells[(rk, ck, m.name)]
                line.append(format_cell(cell, m.decimals))
                if table.has_paper(group, m.name):
                    paper = table.paper_value(rk, ck, m.name)
                    delta = None if paper is None or cell.mean is None else cell.mean - paper
                    line += [format_number(paper, m.decimals), format_number(delta, m.decimals, sign=True)]
        body.append(line)
    return columns, body


def comparison_rows(table: Table) -> list[list[str]]:
    """Claim checks: label, metric, ours, paper, Δ."""
    out = []
    for c in table.comparisons:
        unit = " (% reduction)" if c.kind == "reduction_pct" else ""
        d = c.metric.decimals
        out.append(
            [
                c.label,
                c.metric.label + unit,
                format_number(c.ours, d, sign=True),
                format_number(c.paper, d, sign=True),
                format_number(c.delta, d, sign=True),
            ]
        )
    return out


COMPARISON_HEADER = ["comparison", "metric", "ours", "paper", "Δ"]


def failed_rows(table: Table, width: int = 300) -> list[list[str]]:
    """Failed runs: run key and the first line of the error."""
    rows = []
    for r in table.failed:
        lines = [ln for ln in (r.error or "no error recorded").strip().splitlines() if ln.strip()]
        # a traceback ends with "Type: message"; a one-line record starts with it
        text = (lines[-1] if lines and lines[0].startswith("Traceback") else lines[0]) if lines else ""
        rows.append([r.run_key, text[:width]])
    return rows


def status_summary(table: Table) -> str:
    """`done 14 · running 1 · failed 1 · pending 0 · interrupted 0`."""
    return " · ".join(f"{k} {v}" for k, v in table.counts.items())
