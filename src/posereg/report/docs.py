"""The committed results in the docs: README's claims table and docs/results.md's tables, generated from the
runs.csv beside each committed report (docs/results/<template>/runs.csv), between markers.

    <!-- generated: claims-summary -->   ... <!-- end: claims-summary -->       README.md
    <!-- generated: results <name> -->  ... <!-- end: results <name> -->      docs/results.md, one per report
    <!-- generated: status -->           ... <!-- end: status -->              docs/results.md: every paper table
    <!-- generated: default-run -->      ... <!-- end: default-run -->         README and docs/synthpose.md

`posereg-report --update-docs` rewrites the blocks; `--check-docs` exits non-zero when a block would change (the
tests call it, so the docs cannot drift from the committed data).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posereg.errors import ConfigError, DataError
from posereg.jsonio import read_json
from posereg.paths import REPO_ROOT
from posereg.report.build import make_table
from posereg.report.claims import (
    CONSISTENT,
    CONTRADICTED,
    INCONCLUSIVE,
    LARGER,
    NOT_COMPARABLE,
    REPRODUCED,
    SMALLER,
)
from posereg.report.render_md import md_table
from posereg.report.runinfo import short_commit
from posereg.report.table import Table
from posereg.report.template import list_templates, load_template
from posereg.report.wide import claim_header, claim_rows, legend, report_header, wide
from posereg.runs import RunDir
from posereg.runs.files import DIRTY_SUFFIX

RESULTS_DIR = REPO_ROOT / "docs" / "results"
README = REPO_ROOT / "README.md"
RESULTS_MD = REPO_ROOT / "docs" / "results.md"
SUMMARY = "claims-summary"
DEFAULT_RUN = REPO_ROOT / "docs" / "benchmarks" / "default_run.json"  # scripts/record_default_run.py writes it
DEFAULT_RUN_KEY = "default-run"
SYNTHPOSE_MD = REPO_ROOT / "docs" / "synthpose.md"
STATUS = "status"


@dataclass
class Committed:
    """A committed report: its folder name and the table rebuilt from its runs.csv."""

    name: str
    table: Table

    @property
    def link(self) -> str:
        """Path of its report.md, relative to the repository root."""
        return f"docs/results/{self.name}/report.md"


def committed_reports(root: Path = RESULTS_DIR) -> list[Committed]:
    """Every docs/results/<name>/runs.csv as a rebuilt table, by name."""
    return [Committed(p.parent.name, make_table(runs_csv=p)) for p in sorted(root.glob("*/runs.csv"))]


def _count(verdicts: list[str], *which: str) -> str:
    return " / ".join(str(sum(v == w for v in verdicts)) for w in which)


def summary_row(report: Committed) -> list[str]:
    """One README row: direction and equivalence counts, magnitude counts, budget, convergence, links."""
    table = report.table
    direction = [r.verdict for r in table.claims if not r.claim.is_equivalence]
    equivalence = [r.verdict for r in table.claims if r.claim.is_equivalence]
    magnitudes = [p.magnitude for r in table.claims for p in r.pairs]
    rising = sum(c.rising for c in table.convergence.values())
    sensitive = sum(r.budget_sensitive for r in table.claims)
    compared = sum(r.budgets_compared for r in table.claims)
    budgets = ", ".join([table.budget, *(t.budget + ("" if t.done else " (none done)") for t in table.others)]) \
        if table.others else _steps(table)
    return [
        table.template.title,
        budgets,
        _count(direction, REPRODUCED, INCONCLUSIVE, CONTRADICTED) if direction else "–",
        _count(equivalence, REPRODUCED, INCONCLUSIVE, CONTRADICTED) if equivalence else "–",
        f"{_count(magnitudes, CONSISTENT, SMALLER, LARGER)}; {sum(m == NOT_COMPARABLE for m in magnitudes)}",
        f"{sensitive} of {compared}" if compared else "–",
        f"{rising} of {len(table.convergence)}" if table.convergence else "–",
        f"[report]({report.link})",
        f"`{table.template.command}`",
    ]


def _steps(table: Table) -> str:
    steps = sorted({r.setup.get("steps") for r in table.members if r.status == "done" and r.setup.get("steps")})
    return ", ".join(f"{s:,} steps" for s in steps) or "–"


SUMMARY_HEADER = ["table", "budget(s)", "direction: reproduced / inconclusive / contradicted",
                  "equivalence: r / i / c", "magnitude: consistent / smaller / larger; not comparable",
                  "budget-sensitive", "cells still rising", "report", "regenerate"]


def summary_block(reports: list[Committed]) -> list[str]:
    """README's table of committed reports (verdicts at the longest budget of each)."""
    return md_table(SUMMARY_HEADER, [summary_row(r) for r in reports])


def results_block(report: Committed) -> list[str]:
    """docs/results.md's block for one report: header facts, the table, the claims."""
    table = report.table
    columns, body = wide(table)
    lines = [f"Report: [{report.name}](results/{report.name}/report.md), rebuilt from its "
             f"[runs.csv](results/{report.name}/runs.csv) by `posereg-report --from`.", ""]
    lines += [f"- {line}" for line in report_header(table)] + [""]
    lines += md_table([f"{c.group} {c.header}".strip() for c in columns], body) + ["", legend(table), ""]
    if table.claims:
        lines += md_table(claim_header(table), claim_rows(table))
    return lines


STATUS_HEADER = ["template", "paper table", "runs done / planned", "budgets (steps)", "seeds", "commit(s)",
                 "device(s)", "hours of run time", "report"]


def status_row(name: str, report: Committed | None) -> list[str]:
    """One row of the status table: what the committed runs.csv holds of the template's planned cells."""
    template = report.table.template if report else load_template(name)
    planned = math.prod(len(values) for values in template.grid.values())  # every budget and seed
    if report is None:
        return [f"`{name}`", template.title, f"0 / {planned}", "–", "–", "–", "–", "–", "none at this release"]
    members = [r for t in (report.table, *report.table.others) for r in t.members]
    done = [r for r in members if r.status == "done"]
    steps = sorted({int(r.setup["steps"]) for r in done if r.setup.get("steps")})
    seeds = sorted({str(r.seed) for r in members if getattr(r, "seed", None) is not None}, key=str)
    commits = sorted({short_commit(r.git_commit) if r.git_commit else "?" for r in done})
    devices = sorted({str(r.setup.get("device_model") or "?") for r in done})
    hours = sum(float(r.duration_s or 0.0) for r in done) / 3600
    return [f"`{name}`", template.title, f"{len(done)} / {planned}", ", ".join(f"{s:,}" for s in steps) or "–",
            ", ".join(seeds) or "–", ", ".join(commits) or "–", "; ".join(devices) or "–", f"{hours:.1f}",
            f"[report](results/{name}/report.md)"]


def status_block(reports: list[Committed]) -> list[str]:
    """docs/results.md's status table: every committed report and every shipped template that states paper claims,
    run or not."""
    by_name = {r.name: r for r in reports}
    names = sorted({n for n in list_templates() if load_template(n).claims} | set(by_name))
    return md_table(STATUS_HEADER, [status_row(n, by_name.get(n)) for n in names])


def default_run_record(run: RunDir) -> dict[str, Any]:
    """What the docs say about a finished default run: its metrics, budget, run time, commit and device."""
    status, metrics = run.read_status(), run.metrics()
    if status.get("status") != "done" or metrics is None:
        raise ConfigError(f"{run.path}: not a finished run (status {status.get('status')})")
    commit = str(status.get("git_commit") or "")
    if not commit or commit.endswith(DIRTY_SUFFIX):
        raise ConfigError(f"{run.path}: ran on uncommitted code ({commit or 'no commit'}); re-run on a clean commit")
    if metrics.setup.get("stopped_by"):
        raise ConfigError(f"{run.path}: {metrics.setup['stopped_by']}")
    return {"val/pckh@0.5": metrics.best["val/pckh@0.5"], "val/pckh@0.1": metrics.best["val/pckh@0.1"],
            "val/auc": metrics.best["val/auc"], "test/pckh@0.5": metrics.test["test/pckh@0.5"],
            "steps": metrics.global_step, "duration_s": status["duration_s"], "commit": commit[:7],
            "device_model": metrics.setup.get("device_model"), "cores": os.cpu_count(),  # recorded where it ran
            "torch_threads": metrics.setup.get("torch_threads")}


def default_run_block(path: Path = DEFAULT_RUN) -> list[str]:
    """The sentence README and docs/synthpose.md give for the default run, from the committed record."""
    r = read_json(path)
    minutes, seconds = divmod(round(float(r["duration_s"])), 60)
    return [f"Measured ({r['device_model']}, {r['cores']} cores, {r['torch_threads']} torch threads, "
            f"commit {r['commit']}): "
            f"validation PCKh@0.5 **{r['val/pckh@0.5']:.1f}** (test {r['test/pckh@0.5']:.1f}), PCKh@0.1 "
            f"{r['val/pckh@0.1']:.1f}, AUC {r['val/auc']:.1f} after {r['steps']:,} steps, in {minutes} min {seconds} s "
            "of run time (status.json)."]


def _replace(text: str, key: str, block: list[str], path: Path) -> str:
    begin, end = f"<!-- generated: {key} -->", f"<!-- end: {key} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise DataError(f"{path.name} has no block `{begin}` ... `{end}`: add the two marker lines where it goes")
    return pattern.sub(lambda _: "\n".join([begin, *block, end]), text, count=1)


def render_docs(reports: list[Committed], readme: str, results: str) -> tuple[str, str]:
    """README and docs/results.md with every generated block replaced."""
    readme = _replace(readme, SUMMARY, summary_block(reports), README)
    readme = _replace(readme, DEFAULT_RUN_KEY, default_run_block(), README)
    results = _replace(results, STATUS, status_block(reports), RESULTS_MD)
    for r in reports:
        results = _replace(results, f"results {r.name}", results_block(r), RESULTS_MD)
    return readme, results


def update_docs(check: bool = False, root: Path = RESULTS_DIR, readme_path: Path = README,
                results_path: Path = RESULTS_MD) -> list[Path]:
    """Rewrite the generated blocks (or, with `check`, only list the files whose blocks are stale)."""
    reports = committed_reports(root)
    old = {readme_path: readme_path.read_text(encoding="utf-8"), results_path: results_path.read_text(encoding="utf-8")}
    new = dict(zip(old, render_docs(reports, *old.values()), strict=True))
    if readme_path == README:  # the shipped docs (a test's own README has no synthpose.md beside it)
        synth = SYNTHPOSE_MD.read_text(encoding="utf-8")
        old[SYNTHPOSE_MD], new[SYNTHPOSE_MD] = synth, _replace(synth, DEFAULT_RUN_KEY, default_run_block(),
                                                                SYNTHPOSE_MD)
    stale = [p for p in old if old[p] != new[p]]
    if not check:
        for p in stale:
            p.write_text(new[p], encoding="utf-8")
    return stale
