"""LaTeX (booktabs) report table."""

from __future__ import annotations

from posereg.report.table import Table
from posereg.report.wide import COMPARISON_HEADER, comparison_rows, wide

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def tex_escape(text: str) -> str:
    """Escape LaTeX special characters; ± and Δ become math."""
    out = "".join(_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("−", "-").replace("–", "--")


def _tabular(header_groups: list[tuple[str, int]] | None, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule"]
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


def render_tex(table: Table) -> str:
    """A table environment (booktabs) with the caption and status line, plus the claims table."""
    columns, body = wide(table)
    groups: list[tuple[str, int]] = []
    for c in columns:
        if groups and groups[-1][0] == c.group and c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    caption = tex_escape(f"{table.template.title}. {table.status_line()}. Mean ± std over seeds.")
    lines = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small"]
    lines += _tabular(groups, [c.header for c in columns], body)
    lines += [rf"\caption{{{caption}}}", r"\end{table}"]
    if table.comparisons:
        lines += ["", r"\begin{table}[t]", r"\centering", r"\small"]
        lines += _tabular(None, COMPARISON_HEADER, comparison_rows(table))
        lines += [r"\caption{Paper claims checked on our numbers.}", r"\end{table}"]
    return "\n".join(lines) + "\n"
