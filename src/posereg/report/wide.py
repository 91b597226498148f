"""The report as grids of strings (header + body) shared by the Markdown, LaTeX and HTML renderers."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from posereg.report.claim_spec import Claim
from posereg.report.claims import PairResult, budget_sensitivity, summary_line
from posereg.report.curves import RISING_RULE
from posereg.report.runinfo import header_lines, short_commit
from posereg.report.stats import Estimate
from posereg.report.table import DIRTY_MARK, MIXED_MARK, Table, convergence_metric, format_cell, format_number


@dataclass
class Column:
    """One rendered column: its group (column-group label, '' for none) and header."""

    group: str
    header: str


RISING_MARK = "↑"
CLAIM_LEGEND = (
    "Claims: ours = mean over seeds of a − b ± the half-width of its 95 % t interval: paired t over the seeds both "
    "cells share, Welch t when the seeds differ; a % reduction 100 (b − a) / b uses the per-seed ratios (paired) "
    "or the delta method (Welch df), so the denominator's seed variance is in its interval. direction: reproduced / "
    "contradicted when the interval excludes 0 with the paper's (expected) sign / the other sign, inconclusive when "
    "it includes 0; a group claim (↳ lines) is reproduced only if every pair is, contradicted if a pair is after "
    "Holm's correction over the group. Equivalence claims (a small difference: \"by 0.5 only\", \"comparable\"): two "
    "one-sided tests, 90 % interval inside ± the stated margin = reproduced, wholly beyond it = contradicted. "
    "magnitude: consistent when the paper's value lies inside our interval, else smaller / larger than the paper "
    "(our effect in the claimed direction); not comparable when the paper's value is in another dataset's units "
    f"(only % claims and runs on the paper's protocol are compared). {MIXED_MARK}: a cell from another git commit; "
    f"{RISING_MARK}: a cell still rising at the end of training (see Convergence)."
)


@dataclass
class Section:
    """A titled table below the main one (convergence, verdicts per budget, results at another budget)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    text: str = ""


def row_title(table: Table) -> str:
    """Header of the first column: the row axes or 'output'."""
    rows = table.template.rows
    return "output" if rows.is_outputs else " / ".join(rows.axes) or "run"


def column_groups(columns: list[Column]) -> list[tuple[str, int]]:
    """The spanning header above the columns: (group, how many adjacent columns it spans)."""
    groups: list[tuple[str, int]] = []
    for c in columns:
        if groups and groups[-1][0] == c.group and c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    return groups


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
                marks = (f" {MIXED_MARK}" if table.is_marked(cell) else "") + (
                    f" {DIRTY_MARK}" if table.is_dirty(cell) else "")
                line.append(format_cell(cell, m.decimals) + marks)
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
    if any(table.is_dirty(c) for c in table.cells.values()):
        text += f"; {DIRTY_MARK}: runs on uncommitted code"
    return text + "."


def _interval(est: Estimate | None, mean: float | None, low: float | None, high: float | None, decimals: int,
              suffix: str = "") -> str:
    if mean is None:
        return "–"
    text = format_number(mean, decimals, sign=True)
    if low is not None and high is not None:
        text += f" ± {(high - low) / 2:.{decimals}f}{suffix}"
    return text


def _ours(p: PairResult, decimals: int) -> str:
    return _interval(p.estimate, p.ours, p.low, p.high, decimals, " (90 %)" if p.confidence != 0.95 else "")


def _components(p: PairResult, decimals: int) -> str:
    """`H1 (a) − H1 (b) +0.5 ± 1.6; I1 (a) − I1 (b) +10.8 ± 6.5` for a difference of differences."""
    return "; ".join(f"{text} {_interval(est, est.mean, est.low, est.high, decimals)}" for text, est in p.components)


def _has_components(table: Table) -> bool:
    return any(p.components for r in table.claims for p in r.pairs)


def claim_header(table: Table) -> list[str]:
    """Columns of the claims table (a column for both sides of a difference of differences when one exists)."""
    header = ["claim", "metric", "ours ± CI", "n seeds", "test", "paper", "direction", "magnitude"]
    return header + (["each side (95 % CI)"] if _has_components(table) else [])


def _verdict_text(verdict: str, sensitive: bool) -> str:
    return f"{verdict} · budget-sensitive" if sensitive else verdict


def _pair_row(table: Table, p: PairResult, claim: Claim, name: str, sensitive: bool) -> list[str]:
    spec = table.template.metric(p.pair.metric)
    unit = " (% reduction)" if claim.kind == "reduction_pct" else ""
    marks = (f" {MIXED_MARK}" if p.marked else "") + (f" {RISING_MARK}" if p.rising else "")
    test = f"TOST ± {format_number(claim.margin, spec.decimals)}" if claim.is_equivalence and p.test else p.test
    row = [name + marks, spec.label + unit, _ours(p, spec.decimals), p.seeds_text, test,
           format_number(p.pair.paper, spec.decimals, sign=True), _verdict_text(p.verdict, sensitive),
           p.magnitude or "–"]
    return row + ([_components(p, spec.decimals)] if _has_components(table) else [])


def claim_rows(table: Table) -> list[list[str]]:
    """One line per claim; a group claim is followed by one `↳` line per pair."""
    out = []
    for r in table.claims:
        c = r.claim
        if not c.is_group:
            out.append(_pair_row(table, r.pairs[0], c, f"{c.label} [{r.pairs[0].pair.text()}]", r.budget_sensitive))
            continue
        metrics = list(dict.fromkeys(table.template.metric(p.pair.metric).label for p in r.pairs))
        row = [c.label, ", ".join(metrics), r.scope, "", "TOST" if c.is_equivalence else "", "",
               _verdict_text(r.verdict, r.budget_sensitive), ""]
        out.append(row + ([""] if _has_components(table) else []))
        for p in r.pairs:
            out.append(_pair_row(table, p, c, f"↳ {p.pair.label}: {p.pair.text()}", False))
    return out


def convergence_section(table: Table) -> Section | None:
    """Per cell: the metric's final value and how much it still gained over the last quarter of the steps."""
    if not table.convergence:
        return None
    rows = []
    chosen = convergence_metric(table)
    metric = chosen[0] if chosen else ""
    for rk in table.row_keys:
        for ck in table.col_keys:
            conv = table.convergence.get((rk, ck))
            if conv is None:
                continue
            gain = format_number(conv.gain, 2, sign=True) + (f" ± {conv.gain_std:.2f}" if conv.gain_std is not None
                                                             else "")
            cell = " | ".join(x for x in (table.row_label(rk), table.col_label(ck)) if x)
            rows.append([cell, format_number(conv.final, 1), gain, f"{conv.steps:.0f}", str(conv.n),
                         "still rising" if conv.rising else "flat"])
    rising = sum(row[-1] == "still rising" for row in rows)
    per_output = " of each output" if table.template.rows.is_outputs or (
        table.template.columns is not None and table.template.columns.is_outputs) else ""
    text = (f"{rising} of {len(rows)} cells still rising ({RISING_RULE}; mean ± std over seeds, validation "
            f"metric {metric}{per_output}).")
    return Section("Convergence", ["cell", "final", "gain, last quarter", "steps", "n", ""], rows, text)


def _budget_rows(table: Table) -> list[list[str]]:
    budgets = [table, *table.others]
    rows = []
    for i, r in enumerate(table.claims):
        spec = table.template.metric(r.pairs[0].pair.metric)
        for j, p in enumerate(r.pairs):
            name = r.label if not r.claim.is_group else f"↳ {p.pair.label}"
            if r.claim.is_group and j == 0:
                rows.append([r.label] + [x for t in budgets for x in ("", t.claims[i].verdict)]
                            + [_sensitivity(t.claims[i].verdict for t in budgets)])
            line = [name]
            for t in budgets:
                q = t.claims[i].pairs[j]
                line += [_ours(q, spec.decimals), q.verdict]
            rows.append(line + [_sensitivity(t.claims[i].pairs[j].verdict for t in budgets)])
    return rows


def _sensitivity(verdicts: Iterable[str]) -> str:
    """`yes`, `no`, or `–` when fewer than two budgets give a verdict."""
    return {None: "–", True: "yes", False: "no"}[budget_sensitivity(verdicts)]


def budget_sections(table: Table) -> list[Section]:
    """Every verdict at each budget the grid ran at, then the results table at the other budgets."""
    if not table.others:
        return []
    header = ["claim"] + [x for t in (table, *table.others) for x in (f"ours, {t.budget}", f"verdict, {t.budget}")]
    out = [Section("Verdicts at each budget", header + ["budget-sensitive"], _budget_rows(table),
                   "A claim or pair whose verdict differs between budgets is budget-sensitive: at the shorter "
                   "budget the verdict may describe how fast a method learns, not what it reaches; – where fewer "
                   "than two budgets give it a verdict.")]
    for other in table.others:
        columns, body = wide(other)
        out.append(Section(f"Results at {other.budget}", [f"{c.group} {c.header}".strip() for c in columns], body,
                           f"{other.status_line()}. {legend(other)}"))
        conv = convergence_section(other)
        if conv is not None:
            out.append(Section(f"Convergence at {other.budget}", conv.header, conv.rows, conv.text))
    return out


def provenance_section(table: Table) -> Section | None:
    """Per cell: the commits, device models and precisions of its done runs."""
    rows = []
    seen: set[tuple[str, ...]] = set()
    for t in (table, *table.others):
        for rk in t.row_keys:
            for ck in t.col_keys:
                done = [r for r in t.records.get((rk, ck), []) if r.status == "done"]
                key = tuple(sorted(str(r.path) for r in done))
                if not done or key in seen:  # output dimensions share their runs
                    continue
                seen.add(key)
                parts = [] if t.template.rows.is_outputs else [t.row_label(rk)]
                parts += [] if (t.template.columns and t.template.columns.is_outputs) else [t.col_label(ck)]
                rows.append([" | ".join(p for p in parts if p) or "all runs", t.budget or "",
                             _distinct([short_commit(r.git_commit) if r.git_commit else "unknown" for r in done]),
                             _distinct([str(r.setup.get("device_model") or r.setup.get("device") or "not recorded")
                                        for r in done]),
                             _distinct([str(r.setup.get("precision") or "?") for r in done]), str(len(done))])
    if not rows:
        return None
    header = ["cell", "budget", "commit", "device model", "precision", "runs"]
    if not table.others:
        header, rows = header[:1] + header[2:], [row[:1] + row[2:] for row in rows]
    return Section("Provenance", header, rows, "Per cell, what produced its done runs (status.json, metrics.json "
                   "setup); a commit marked dirty ran on uncommitted code.")


def _distinct(values: list[str]) -> str:
    """`a (3)` or `a (2), b (1)`."""
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"{v} ({n})" for v, n in counts.items())


def sections(table: Table) -> list[Section]:
    """The tables below the claims, in order."""
    conv = convergence_section(table)
    prov = provenance_section(table)
    return ([conv] if conv else []) + budget_sections(table) + ([prov] if prov else [])


def claims_summary(table: Table) -> str:
    """`Claims: 5 of 7 claims reproduced, ...` ('' without claims)."""
    text = summary_line(table.claims)
    return f"Claims: {text}." if text else ""


def report_header(table: Table) -> list[str]:
    """The lines above the table: claims summary, runs, setup, code, time, protocol."""
    summary = claims_summary(table)
    lines = [summary] if summary else []
    if table.others:
        others = ", ".join(t.budget for t in table.others)
        waiting = [t.budget for t in table.others if not t.done]
        where = "the longest budget with a done run" if waiting else "the longest budget of the grid"
        lines.append(f"Budget: the table and the claims above are at {table.budget}, {where}; the same grid at "
                     f"{others} is below (Verdicts at each budget)"
                     + (f"; no run at {', '.join(waiting)} has finished yet." if waiting else "."))
    return lines + header_lines(table)


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

