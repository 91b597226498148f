"""The report as grids of strings (header + body) shared by the Markdown, LaTeX and HTML renderers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from posereg.report.claims import PairResult, summary_line
from posereg.report.runinfo import header_lines
from posereg.report.table import MIXED_MARK, Table, format_cell, format_number


@dataclass
class Column:
    """One rendered column: its group (column-group label, '' for none) and header."""

    group: str
    header: str


CLAIM_HEADER = ["claim", "metric", "ours ± 95 % CI", "n seeds", "test", "paper", "verdict"]
CLAIM_LEGEND = (
    "Claims: ours = mean over seeds of a − b (reduction: 100 (b − a) / b) ± the half-width of its 95 % t interval: "
    "paired t over the seeds both cells share, Welch t when the seeds differ. reproduced / contradicted: the "
    "interval excludes 0 with the paper's (expected) sign / the other sign; inconclusive: it includes 0. A group "
    "claim (↳ lines) is reproduced only if every pair is. paper: the paper's stated difference, or computed from "
    "its table cells."
)


def row_title(table: Table) -> str:
    """Header of the first column: the row axes or 'output'."""
    rows = table.template.rows
    return "output" if rows.is_outputs else " / ".join(rows.axes) or "run"


def wide(table: Table) -> tuple[list[Column], list[list[str]]]:
    """Columns (ours, then paper and Δ where the paper has numbers and the protocol matches) and one string
    row per table row; a cell with runs from another commit gets MIXED_MARK."""
    paper_head = table.protocol.paper_header()
    delta = table.show_delta()
    columns = [Column("", row_title(table))]
    for ck in table.col_keys:
        group = table.col_label(ck)
        for m in table.metrics:
            columns.append(Column(group, m.label))
            if table.has_paper(group, m.name):
                columns.append(Column(group, f"{m.label} {paper_head}"))
                columns += [Column(group, "Δ")] if delta else []
    body = []
    for rk in table.row_keys:
        line = [table.row_label(rk)]
        for ck in table.col_keys:
            group = table.col_label(ck)
            for m in table.metrics:
                cell = table.cells[(rk, ck, m.name)]
                line.append(format_cell(cell, m.decimals) + (f" {MIXED_MARK}" if table.is_marked(cell) else ""))
                if table.has_paper(group, m.name):
                    paper = table.paper_value(rk, ck, m.name)
                    line.append(format_number(paper, m.decimals))
                    if delta:
                        diff = None if paper is None or cell.mean is None else cell.mean - paper
                        line.append(format_number(diff, m.decimals, sign=True))
        body.append(line)
    return columns, body


def legend(table: Table) -> str:
    """What the table's numbers are."""
    text = "Ours: mean ± sample std over seeds; (k/n): only k of n seeds done"
    if any(table.paper.values()):
        text += "; Δ = ours − paper" if table.show_delta() else "; paper numbers are from another dataset (no Δ)"
    if table.mixed_commits():
        text += f"; {MIXED_MARK}: runs from another git commit"
    return text + "."


def _ours(p: PairResult, decimals: int) -> str:
    if p.ours is None:
        return "–"
    text = format_number(p.ours, decimals, sign=True)
    if p.low is not None and p.high is not None:
        text += f" ± {(p.high - p.low) / 2:.{decimals}f}"
    return text


def _pair_row(table: Table, p: PairResult, kind: str, name: str) -> list[str]:
    spec = table.template.metric(p.pair.metric)
    unit = " (% reduction)" if kind == "reduction_pct" else ""
    mark = f" {MIXED_MARK}" if p.marked else ""
    return [name + mark, spec.label + unit, _ours(p, spec.decimals), p.seeds_text, p.test,
            format_number(p.pair.paper, spec.decimals, sign=True), p.verdict]


def claim_rows(table: Table) -> list[list[str]]:
    """One line per claim; a group claim is followed by one `↳` line per pair."""
    out = []
    for r in table.claims:
        c = r.claim
        if not c.is_group:
            out.append(_pair_row(table, r.pairs[0], c.kind, f"{c.label} [{r.pairs[0].pair.text()}]"))
            continue
        metrics = list(dict.fromkeys(table.template.metric(p.pair.metric).label for p in r.pairs))
        out.append([c.label, ", ".join(metrics), r.scope, "", "", "", r.verdict])
        for p in r.pairs:
            out.append(_pair_row(table, p, c.kind, f"↳ {p.pair.label}: {p.pair.text()}"))
    return out


def claims_summary(table: Table) -> str:
    """`Claims: 5 of 7 claims reproduced, ...` ('' without claims)."""
    text = summary_line(table.claims)
    return f"Claims: {text}." if text else ""


def report_header(table: Table) -> list[str]:
    """The lines above the table: claims summary, runs, setup, code, time, protocol."""
    summary = claims_summary(table)
    return ([summary] if summary else []) + header_lines(table)


def foreign_rows(table: Table) -> list[list[str]]:
    """Runs under the folder that are not cells of the grid: run, status, why."""
    paths = [str(r.path) for r in table.all_records]
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0]) if paths else ""
    return [[os.path.relpath(f.record.path, root) if root else str(f.record.path), f.record.status, f.reason]
            for f in table.foreign]


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

