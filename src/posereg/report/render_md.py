"""Markdown report."""

from __future__ import annotations

from posereg.report.breakdown import breakdowns
from posereg.report.table import Table
from posereg.report.wide import (
    CLAIM_LEGEND,
    claim_header,
    claim_rows,
    failed_rows,
    foreign_rows,
    legend,
    report_header,
    sections,
    status_summary,
    wide,
)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A pipe table."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def breakdown_md(table: Table) -> list[str]:
    """The per-part / per-joint sections."""
    lines = []
    for b in breakdowns(table):
        lines += [f"### {b.title}", ""] + md_table(["", *b.columns], b.text_rows()) + [""]
    return lines


def render_md(table: Table, images: dict[str, str] | None = None) -> str:
    """The report as Markdown; `images` maps a caption to a PNG path relative to the report."""
    t = table.template
    lines = [f"# {t.title}", ""]
    if t.description:
        lines += [t.description, ""]
    if t.paper_source:
        lines += [f"Paper: {t.paper_source}", ""]
    lines += [f"**{table.status_line()}** ({status_summary(table)})", ""]
    lines += [f"- {line}" for line in report_header(table)] + [""]
    columns, body = wide(table)
    header = [f"{c.group} {c.header}".strip() for c in columns]
    lines += md_table(header, body) + [""]
    lines += [legend(table), ""]
    if table.claims:
        lines += ["## Paper claims", ""] + md_table(claim_header(table), claim_rows(table)) + ["", CLAIM_LEGEND, ""]
    for section in sections(table):
        lines += [f"## {section.title}", ""] + md_table(section.header, section.rows) + [""]
        lines += [section.text, ""] if section.text else []
    per_part = breakdown_md(table)
    if per_part:
        lines += ["## Per part and per joint", "", "Mean over the done runs of each cell.", ""] + per_part
    if table.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in table.notes] + [""]
    if table.failed:
        lines += ["## Failed runs", ""] + md_table(["run", "error"], failed_rows(table)) + [""]
    if table.foreign:
        lines += ["## Foreign runs", "", "Runs under the folder that are not cells of this grid (not in the table).",
                  ""] + md_table(["run", "status", "why"], foreign_rows(table)) + [""]
    if images:
        lines += ["## Plots", ""] + [f"![{cap}]({path})" for cap, path in images.items()] + [""]
    return "\n".join(lines)
