"""Markdown report."""

from __future__ import annotations

from posereg.report.table import Table
from posereg.report.wide import COMPARISON_HEADER, comparison_rows, failed_rows, status_summary, wide


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def render_md(table: Table, images: dict[str, str] | None = None) -> str:
    """The report as Markdown; `images` maps a caption to a PNG path relative to the report."""
    t = table.template
    lines = [f"# {t.title}", ""]
    if t.description:
        lines += [t.description, ""]
    if t.paper_source:
        lines += [f"Paper: {t.paper_source}", ""]
    lines += [f"**{table.status_line()}** ({status_summary(table)})", ""]
    columns, body = wide(table)
    header = [f"{c.group} {c.header}".strip() for c in columns]
    lines += _md_table(header, body) + [""]
    lines.append("Ours: mean ± sample std over seeds; (k/n): only k of n seeds done; Δ = ours − paper.")
    lines.append("")
    if table.comparisons:
        lines += ["## Paper claims", ""] + _md_table(COMPARISON_HEADER, comparison_rows(table)) + [""]
    if table.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in table.notes] + [""]
    if table.failed:
        lines += ["## Failed runs", ""] + _md_table(["run", "error"], failed_rows(table)) + [""]
    if images:
        lines += ["## Plots", ""] + [f"![{cap}]({path})" for cap, path in images.items()] + [""]
    return "\n".join(lines)
