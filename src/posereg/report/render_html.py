"""Self-contained HTML report: tables plus plots embedded as base64 PNG."""

from __future__ import annotations

import base64
from html import escape

from posereg.report.breakdown import breakdowns
from posereg.report.claims import CONTRADICTED, REPRODUCED
from posereg.report.table import Table
from posereg.report.wide import (
    CLAIM_LEGEND,
    claim_header,
    claim_rows,
    column_groups,
    failed_rows,
    foreign_rows,
    legend,
    report_header,
    sections,
    status_summary,
    wide,
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #444}
.partial{background:#fff3cd;padding:6px 10px;border-left:4px solid #e0a800}
.complete{background:#e7f5e9;padding:6px 10px;border-left:4px solid #2e7d32}
.failed{color:#b00020}.paper{color:#555}.delta{color:#555;font-style:italic}
.reproduced{color:#2e7d32}.contradicted{color:#b00020;font-weight:bold}.warning{color:#b00020}
ul.header{font-size:14px}
img{max-width:48%;margin:0.5%;border:1px solid #eee}
"""


def _rows_html(header: list[str], rows: list[list[str]], groups: list[tuple[str, int]] | None = None) -> str:
    head = ""
    if groups and any(g for g, _ in groups):
        head += "<tr>" + "".join(f'<th colspan="{n}">{escape(g)}</th>' for g, n in groups) + "</tr>"
    head += "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
    body = []
    for row in rows:
        tds = []
        for i, c in enumerate(row):
            cls = ""
            if c == "failed":
                cls = ' class="failed"'
            elif c.split(" · ")[0] in (REPRODUCED, CONTRADICTED):
                cls = f' class="{c.split(" · ")[0]}"'
            elif i and header[i] == "Δ":
                cls = ' class="delta"'
            elif i and " paper" in header[i]:
                cls = ' class="paper"'
            tds.append(f"<td{cls}>{escape(c)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def render_html(table: Table, images: dict[str, bytes] | None = None) -> str:
    """The report as one HTML page; `images` maps a caption to PNG bytes (embedded inline)."""
    t = table.template
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(t.title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{escape(t.title)}</h1>"]
    if t.description:
        parts.append(f"<p>{escape(t.description)}</p>")
    if t.paper_source:
        parts.append(f"<p>Paper: {escape(t.paper_source)}</p>")
    cls = "partial" if table.partial else "complete"
    parts.append(f'<p class="{cls}"><b>{escape(table.status_line())}</b> — {escape(status_summary(table))}</p>')
    items = "".join(f'<li class="warning">{escape(line)}</li>' if line.startswith("WARNING") else
                    f"<li>{escape(line)}</li>" for line in report_header(table))
    parts.append(f'<ul class="header">{items}</ul>')
    columns, body = wide(table)
    groups = column_groups(columns)
    parts.append(_rows_html([c.header for c in columns], body, groups))
    parts.append(f"<p>{escape(legend(table))}</p>")
    if table.claims:
        parts.append("<h2>Paper claims</h2>" + _rows_html(claim_header(table), claim_rows(table)))
        parts.append(f"<p>{escape(CLAIM_LEGEND)}</p>")
    for section in sections(table):
        parts.append(f"<h2>{escape(section.title)}</h2>" + _rows_html(section.header, section.rows))
        parts += [f"<p>{escape(section.text)}</p>"] if section.text else []
    tables = breakdowns(table)
    if tables:
        parts.append("<h2>Per part and per joint</h2><p>Mean over the done runs of each cell.</p>")
        parts += [f"<h3>{escape(b.title)}</h3>" + _rows_html(["", *b.columns], b.text_rows()) for b in tables]
    if table.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in table.notes) + "</ul>")
    if table.failed:
        parts.append("<h2>Failed runs</h2>" + _rows_html(["run", "error"], failed_rows(table)))
    if table.foreign:
        parts.append("<h2>Foreign runs</h2><p>Runs under the folder that are not cells of this grid.</p>"
                     + _rows_html(["run", "status", "why"], foreign_rows(table)))
    if images:
        parts.append("<h2>Plots</h2>")
        for caption, png in images.items():
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<img alt="{escape(caption)}" title="{escape(caption)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)
