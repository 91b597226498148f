"""Assemble a report: collect runs, build the table, render md/csv/tex/html and the plots."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from posereg.report.claims import evaluate_claims
from posereg.report.collect import collect, expand
from posereg.report.members import merge_grids
from posereg.report.plots import all_plots
from posereg.report.render_csv import render_csv
from posereg.report.render_html import render_html
from posereg.report.render_md import render_md
from posereg.report.render_tex import render_tex
from posereg.report.table import Table, build_table, infer_template
from posereg.report.template import Template, load_template

MANIFEST = "sweep.yaml"
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


def write_manifest(grid_dir: Path, template: Template | str, grid: dict[str, list[str]], fixed: dict[str, str],
                   command: list[str]) -> Path:
    """Record what a sweep launched, so the report knows the expected cells and fixed settings."""
    grid_dir.mkdir(parents=True, exist_ok=True)
    path = grid_dir / MANIFEST
    name = str(template.path or template.name) if isinstance(template, Template) else template
    real = template.is_real if isinstance(template, Template) else False
    data = {"template": name, "real": real, "grid": grid, "fixed": fixed, "command": command}
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def read_manifest(grid_dir: Path) -> dict | None:
    """The sweep manifest of a grid directory, if any."""
    path = Path(grid_dir) / MANIFEST
    if not path.is_file():
        return None
    with open(path) as f:
        return yaml.safe_load(f) or None


def make_table(paths: list[str | Path], template: str | Path | Template | None = None) -> Table:
    """Collect every run under the paths and build the table (template from the argument, the manifest, or
    inferred); the grid is the template's plus what the last sweep call added, other runs are foreign."""
    dirs = expand(paths)
    manifest = read_manifest(dirs[0]) if len(dirs) == 1 else None
    records = collect(dirs)
    if isinstance(template, Template):
        t = template
    elif template is not None:
        t = load_template(template, real=bool(manifest and manifest.get("real")))
    elif manifest and manifest.get("template"):
        t = load_template(manifest["template"], real=bool(manifest.get("real")))
    else:
        t = infer_template(records, name=dirs[0].name)
    grid = None
    if manifest and manifest.get("grid"):
        launched = {k: [str(v) for v in vals] for k, vals in manifest["grid"].items()}
        grid = merge_grids(t.grid, launched) if not t.inferred else launched
    fixed = {k: str(v) for k, v in (manifest.get("fixed") or {}).items()} if manifest else None
    source = str(dirs[0]) if len(dirs) == 1 else f"{len(dirs)} paths in {os.path.commonpath(dirs)}"
    table = build_table(t, records, grid=grid, fixed=fixed, experiment=dirs[0].name if manifest else None,
                        source=source)
    table.claims = evaluate_claims(table)
    return table


def build_report(paths: list[str | Path], template: str | Path | Template | None = None,
                 out_dir: str | Path | None = None, plots: bool = True) -> Report:
    """Write report.md/.csv/.tex/.html (+ PNG plots) into out_dir (default: <first grid dir>/report)."""
    table = make_table(paths, template)
    out = Path(out_dir) if out_dir else expand(paths)[0] / "report"
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
    return Report(table, files)
