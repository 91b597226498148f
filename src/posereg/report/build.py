"""Assemble a report: collect runs, build the table, render md/csv/tex/html and the plots."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from posereg.paths import TEMPLATES_DIR
from posereg.report.claims import evaluate_claims
from posereg.report.collect import RunRecord, collect, expand
from posereg.report.manifest import read_manifest, report_folder
from posereg.report.members import axis_value, merge_grids
from posereg.report.plots import all_plots
from posereg.report.render_csv import render_csv
from posereg.report.render_html import render_html
from posereg.report.render_md import render_md
from posereg.report.render_tex import render_tex
from posereg.report.runs_csv import read_runs_csv, runs_csv_text
from posereg.report.table import Table, build_table, convergence_metric, infer_template
from posereg.report.template import Template, load_template

PLOT_CAPTIONS = {
    "pckh_curves": "PCKh curves over thresholds 0..0.5",
    "val_curves": "validation curves per cell",
    "trend": "metric vs axis",
}


@dataclass
class Report:
    """A built report: the table and the files written."""

    table: Table
    files: dict[str, Path] = field(default_factory=dict)


BUDGET_AXIS = "budget_scale"
RUNS_CSV = "runs.csv"


def load_runs(paths: list[str | Path] | None = None, runs_csv: str | Path | None = None, variant: str | None = None,
              ) -> tuple[list[RunRecord], dict | None, str | None]:
    """The records, the sweep manifest and the experiment (grid folder) of run directories or of a runs.csv."""
    if runs_csv is not None:
        records, manifest = read_runs_csv(runs_csv)
        experiments = {r.experiment for r in records}
        return records, manifest, experiments.pop() if len(experiments) == 1 else None
    dirs = expand(paths or [])
    manifest = read_manifest(dirs[0], variant) if len(dirs) == 1 else None
    return collect(dirs), manifest, dirs[0].name if manifest else None


def make_table(paths: list[str | Path] | None = None, template: str | Path | Template | None = None,
               runs_csv: str | Path | None = None, variant: str | None = None) -> Table:
    """Collect the runs (from run directories, or a runs.csv) and build the table with its claims (template from
    the argument, the manifest, or inferred); the grid is the template's plus what the last sweep call added,
    other runs are foreign. A grid swept over several budgets gives one table per budget (see `assemble`)."""
    records, manifest, experiment = load_runs(paths, runs_csv, variant)
    if isinstance(template, Template):
        t = template
    elif template is not None:
        t = load_template(template, real=bool(manifest and manifest.get("real")))
    elif manifest and manifest.get("template"):
        name = str(manifest["template"])
        t = load_template(name if Path(name).is_file() else Path(name).stem, real=bool(manifest.get("real")))
    else:
        t = infer_template(records, name=experiment or "grid")
    grid = None
    if manifest and manifest.get("grid"):
        launched = {k: [str(v) for v in vals] for k, vals in manifest["grid"].items()}
        # the template's own grid keeps the values earlier calls added; a variant is exactly what it asked for
        grid = merge_grids(t.grid, launched) if not t.inferred and not manifest.get("variant") else launched
    fixed = {k: str(v) for k, v in (manifest.get("fixed") or {}).items()} if manifest else None
    return assemble(t, records, grid, fixed, experiment)


def _budget_label(table: Table, value: str) -> str:
    """`2,304 steps` (the steps the budget's done runs trained), else `budget_scale=3`."""
    steps = Counter(r.setup.get("steps") for r in table.members if r.status == "done" and r.setup.get("steps"))
    return f"{steps.most_common(1)[0][0]:,} steps" if steps else f"{BUDGET_AXIS}={value}"


def _numeric_key(value: str) -> tuple[int, float | str]:
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def assemble(t: Template, records: list[RunRecord], grid: dict[str, list[str]] | None, fixed: dict[str, str] | None,
             experiment: str | None) -> Table:
    """The table and its claims. When the grid sweeps `budget_scale`, one table per budget: the longest with a done
    run is the report's table, the others hang below it (`Table.others`) and each claim records its verdict at every
    budget (a claim whose verdict differs is budget-sensitive)."""
    full = dict(grid if grid is not None else t.grid)
    budgets = sorted(full.get(BUDGET_AXIS) or [], key=_numeric_key)
    if len(budgets) < 2:
        table = build_table(t, records, grid=grid, fixed=fixed, experiment=experiment)
        table.claims = evaluate_claims(table)
        return table
    tables = []
    for value in budgets:
        mine = [r for r in records if axis_value(r, BUDGET_AXIS) not in budgets or axis_value(r, BUDGET_AXIS) == value]
        table = build_table(t, mine, grid={**full, BUDGET_AXIS: [value]}, fixed=fixed, experiment=experiment)
        table.claims = evaluate_claims(table)
        table.budget = _budget_label(table, value)
        tables.append(table)
    if len({tb.budget for tb in tables}) < len(tables):  # the same steps at two budgets: name them by the knob
        for tb, value in zip(tables, budgets, strict=True):
            tb.budget = f"{BUDGET_AXIS}={value}"
    # the longest budget with a done run leads: a longer one nobody has finished yet would be an empty table
    primary = ([tb for tb in tables if tb.done] or tables)[-1]
    primary.others = [tb for tb in tables if tb is not primary]
    primary.all_records, primary.grid = list(records), full
    for i, result in enumerate(primary.claims):
        result.by_budget = {tb.budget: tb.claims[i].verdict for tb in tables}
        for other in primary.others:
            other.claims[i].by_budget = result.by_budget
    return primary


def _cell_labels(table: Table) -> dict[str, str]:
    """Each run's table cell (`I1 | strategy 1`), by run path; output dimensions are left out."""
    cols_out = table.template.columns is not None and table.template.columns.is_outputs
    out = {}
    for t in (table, *table.others):
        for (rk, ck), runs in t.records.items():
            parts = ([] if t.template.rows.is_outputs else [t.row_label(rk)]) + ([] if cols_out else [t.col_label(ck)])
            for r in runs:
                out.setdefault(str(r.path), " | ".join(p for p in parts if p))
    return out


def runs_csv_of(table: Table) -> str:
    """runs.csv text of every run the table read (foreign ones included, with an empty cell)."""
    chosen = convergence_metric(table)
    names = {conv.metric for t in (table, *table.others) for conv in t.convergence.values()}
    names |= {chosen[0]} if chosen else set()
    template = table.template
    shipped = template.path is None or template.path.parent == TEMPLATES_DIR
    name = "" if template.inferred else template.name if shipped else str(template.path)
    manifest = {"template": name, "real": template.is_real,
                "grid": table.grid, "fixed": table.fixed}
    return runs_csv_text(table.all_records, manifest, _cell_labels(table), sorted(names))


def build_report(paths: list[str | Path] | None, template: str | Path | Template | None = None,
                 out_dir: str | Path | None = None, plots: bool = True, runs_csv: str | Path | None = None,
                 variant: str | None = None) -> Report:
    """Write report.md/.csv/.tex/.html, runs.csv (+ PNG plots) into out_dir (default: <grid dir>/report, or
    report-<variant> for a variant grid; the folder of the runs.csv the report is rebuilt from)."""
    table = make_table(paths, template, runs_csv=runs_csv, variant=variant)
    if out_dir is None and runs_csv is None:
        dirs = expand(paths or [])
        manifest = read_manifest(dirs[0], variant) if len(dirs) == 1 else None
        out_dir = dirs[0] / report_folder((manifest or {}).get("variant") or "")
    out = Path(out_dir) if out_dir else Path(runs_csv).parent  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    pngs = all_plots(table) if plots else {}
    files: dict[str, Path] = {}
    for stem, png in pngs.items():
        files[stem] = out / f"{stem}.png"
        files[stem].write_bytes(png)
    captions = {PLOT_CAPTIONS[s]: png for s, png in pngs.items()}
    texts = {
        "md": render_md(table, {PLOT_CAPTIONS[s]: f"{s}.png" for s in pngs}),
        "csv": render_csv(table),
        "tex": render_tex(table),
        "html": render_html(table, captions),
    }
    for ext, text in texts.items():
        files[ext] = out / f"report.{ext}"
        files[ext].write_text(text, encoding="utf-8")
    files["runs"] = out / RUNS_CSV
    files["runs"].write_text(runs_csv_of(table), encoding="utf-8")
    return Report(table, files)
