"""LaTeX (booktabs) report tables: results, paper claims, per part / per joint."""

from __future__ import annotations

from posereg.report.breakdown import breakdowns
from posereg.report.table import Table
from posereg.report.wide import (
    claim_header,
    claim_rows,
    claims_summary,
    column_groups,
    legend,
    report_header,
    sections,
    wide,
)

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
_TEXT = {"±": r"$\pm$", "Δ": r"$\Delta$", "−": "-", "–": "--", "→": r"$\to$", "↳": r"$\hookrightarrow$",
         "†": r"$\dagger$", "↑": r"$\uparrow$", "×": r"$\times$", "·": r"$\cdot$", "²": r"$^2$", "³": r"$^3$",
         "<": r"$<$", ">": r"$>$"}


def tex_escape(text: str) -> str:
    """Escape LaTeX special characters; ±, Δ, arrows and the like become math."""
    out = "".join(_SPECIAL.get(ch, ch) for ch in text)
    for ch, tex in _TEXT.items():
        out = out.replace(ch, tex)
    return out


def _tabular(header_groups: list[tuple[str, int]] | None, header: list[str], rows: list[list[str]],
             align: str | None = None) -> list[str]:
    lines = [r"\begin{tabular}{" + (align or "l" + "r" * (len(header) - 1)) + "}", r"\toprule"]
    if header_groups and any(g for g, _ in header_groups):
        parts, rules, col = [], [], 1
        for g, span in header_groups:
            parts.append(rf"\multicolumn{{{span}}}{{c}}{{{tex_escape(g)}}}" if span > 1 else tex_escape(g))
            if g:
                rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
        lines += [" & ".join(parts) + r" \\", " ".join(rules)]
    lines.append(" & ".join(tex_escape(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(tex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _float(tabular: list[str], caption: str) -> list[str]:
    return ["", r"\begin{table}[t]", r"\centering", r"\small", *tabular,
            rf"\caption{{{tex_escape(caption)}}}", r"\end{table}"]


def render_tex(table: Table) -> str:
    """Table environments (booktabs): results with the status and header lines, claims, per part / joint."""
    columns, body = wide(table)
    groups = column_groups(columns)
    lines = [r"% requires \usepackage{booktabs}"] + [f"% {line}" for line in report_header(table)]
    caption = f"{table.template.title}. {table.status_line()}. {legend(table)}"
    lines += _float(_tabular(groups, [c.header for c in columns], body), caption)[1:]
    if table.claims:
        header = claim_header(table)
        align = "p{0.3\\linewidth}lrrllp{0.12\\linewidth}l" + "p{0.2\\linewidth}" * (len(header) - 8)
        lines += _float(_tabular(None, header, claim_rows(table), align),
                        f"Paper claims checked on our numbers. {claims_summary(table)}")
    for section in sections(table):
        lines += _float(_tabular(None, section.header, section.rows, "l" + "r" * (len(section.header) - 1)),
                        f"{section.title}. {section.text}".strip())
    for b in breakdowns(table):
        lines += _float(_tabular(None, ["", *b.columns], b.text_rows()), b.title)
    return "\n".join(lines) + "\n"
