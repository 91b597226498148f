"""Build a template's table from run records: mean ± std over seeds, paper numbers and differences."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from posereg.errors import ConfigError
from posereg.report.collect import RunRecord, status_counts
from posereg.report.paper import resolve
from posereg.report.template import Dim, MetricSpec, Template

SEED_KEYS = ("seed",)


@dataclass
class Cell:
    """Values of one (row, column, metric) cell over the runs (seeds) that are done."""

    values: list[float]
    expected: int
    statuses: dict[str, int]

    @property
    def n(self) -> int:
        """Number of done runs that gave a value."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        """Mean over runs (None when no run is done)."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n-1) over runs; None with fewer than two."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None


@dataclass
class ComparisonResult:
    """A paper claim checked on our numbers."""

    label: str
    metric: MetricSpec
    ours: float | None
    paper: float | None
    kind: str

    @property
    def delta(self) -> float | None:
        """ours - paper."""
        return None if self.ours is None or self.paper is None else self.ours - self.paper


@dataclass
class Table:
    """A report table in the template's layout."""

    template: Template
    row_keys: list[str]
    col_keys: list[str]
    cells: dict[tuple[str, str, str], Cell]
    paper: dict[tuple[str, str, str], float]
    comparisons: list[ComparisonResult]
    counts: dict[str, int]
    expected_runs: int
    failed: list[RunRecord]
    records: dict[tuple[str, str], list[RunRecord]]
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[MetricSpec]:
        """The table's metrics in order."""
        return self.template.metrics

    def row_label(self, key: str) -> str:
        """Display label of a row key."""
        return self.template.rows.label(key)

    def col_label(self, key: str) -> str:
        """Display label of a column key ('' without column groups)."""
        return self.template.columns.label(key) if self.template.columns else ""

    @property
    def done(self) -> int:
        """Runs that finished."""
        return self.counts.get("done", 0)

    @property
    def partial(self) -> bool:
        """True while some expected run is not done."""
        return self.done < self.expected_runs

    def status_line(self) -> str:
        """One line: `16/16 runs done` or `PARTIAL: 5/16 runs done (2 running, 1 failed, 8 not started)`."""
        head = f"{self.done}/{self.expected_runs} runs done"
        if not self.partial:
            return head
        missing = max(self.expected_runs - sum(self.counts.values()), 0)
        parts = [f"{self.counts[s]} {s}" for s in ("running", "interrupted", "failed") if self.counts.get(s)]
        not_started = self.counts.get("pending", 0) + missing
        if not_started:
            parts.append(f"{not_started} not started")
        return f"PARTIAL: {head}" + (f" ({', '.join(parts)})" if parts else "")

    def has_paper(self, col: str, metric: str) -> bool:
        """True when some row has a paper number for this column group and metric."""
        return any((r, col, metric) in self.paper for r in self.row_labels())

    def row_labels(self) -> list[str]:
        """Row labels in order."""
        return [self.row_label(k) for k in self.row_keys]

    def paper_value(self, row: str, col: str, metric: str) -> float | None:
        """Paper number of a cell, by keys."""
        return self.paper.get((self.row_label(row), self.col_label(col), metric))


def _fmt(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def format_cell(cell: Cell | None, decimals: int) -> str:
    """`87.1 ± 0.3`, `87.1` for one run, `(k/n)` appended when seeds are missing, else a status word."""
    if cell is None:
        return "–"
    if cell.n == 0:
        for word in ("failed", "running", "interrupted"):
            if cell.statuses.get(word):
                return word
        return "–" if cell.expected == 0 else "pending"
    text = _fmt(cell.mean, decimals)
    if cell.std is not None:
        text += f" ± {cell.std:.{decimals}f}"
    if cell.n < cell.expected:
        text += f" ({cell.n}/{cell.expected})"
    return text


def format_number(value: float | None, decimals: int, sign: bool = False) -> str:
    """A number with fixed decimals, `–` when absent; `sign` forces +/-."""
    return _fmt(value, decimals, sign)


def _dim_values(dim: Dim, grid: dict[str, list[str]]) -> list[str]:
    """Value keys of a dimension in order: labels' order first, then the grid's order."""
    if dim.is_outputs:
        return list(dim.outputs)
    combos = [",".join(c) for c in itertools.product(*(grid.get(a, []) for a in dim.axes))]
    ordered = [k for k in dim.labels if k in combos]
    return ordered + [k for k in combos if k not in ordered]


def _run_key(dim: Dim | None, record: RunRecord) -> str | None:
    if dim is None or dim.is_outputs:
        return ""
    vals = [record.overrides.get(a) for a in dim.axes]
    return None if any(v is None for v in vals) else ",".join(vals)  # type: ignore[arg-type]


def _in_grid(record: RunRecord, grid: dict[str, list[str]], fixed: dict[str, str] | None) -> bool:
    if any(record.overrides.get(k) not in vals for k, vals in grid.items()):
        return False
    if fixed is None:
        return True
    extra = {k: v for k, v in record.overrides.items() if k not in grid}
    return all(extra.get(k) == v for k, v in fixed.items())


def _dedupe(records: list[RunRecord], grid: dict[str, list[str]]) -> list[RunRecord]:
    """One record per grid point: the most recently finished one (others are older launches)."""
    best: dict[tuple, RunRecord] = {}
    for r in records:
        point = tuple(r.overrides.get(k) for k in sorted(grid))
        cur = best.get(point)
        rank = (r.status == "done", r.ended_at.timestamp() if r.ended_at else 0.0)
        if cur is None or rank > (cur.status == "done", cur.ended_at.timestamp() if cur.ended_at else 0.0):
            best[point] = r
    return list(best.values())


def metric_key(template: Template, metric: MetricSpec, row: str, col: str) -> str:
    """Stored metric name of a cell (per-output metrics use template.metric_name)."""
    fields = {"metric": metric.name}
    if template.rows.is_outputs:
        fields["row"] = row
    if template.columns is not None and template.columns.is_outputs:
        fields["col"] = col
    return template.metric_name.format(**fields) if len(fields) > 1 else metric.name


def build_table(
    template: Template,
    records: list[RunRecord],
    grid: dict[str, list[str]] | None = None,
    fixed: dict[str, str] | None = None,
    strict: bool = False,
) -> Table:
    """Aggregate runs into the template's layout; `grid`/`fixed` (from the sweep manifest) define the cells.

    `strict` raises for comparisons that name cells outside the grid (template checks); otherwise they stay empty.
    """
    grid = dict(grid if grid is not None else template.grid)
    if not grid:
        grid = infer_grid(records)
    members = _dedupe([r for r in records if _in_grid(r, grid, fixed)], grid)
    notes = list(template.notes)
    if len(members) < len([r for r in records if _in_grid(r, grid, None)]):
        notes.append("Older runs of the same grid points with other fixed settings were ignored.")
    row_keys = _dim_values(template.rows, grid)
    col_keys = _dim_values(template.columns, grid) if template.columns else [""]
    table_axes = set(template.rows.axes) | set(template.columns.axes if template.columns else [])
    per_cell = math.prod(len(v) for k, v in grid.items() if k not in table_axes)
    by_cell: dict[tuple[str, str], list[RunRecord]] = {}
    for r in members:
        rk, ck = _run_key(template.rows, r), _run_key(template.columns, r)
        if rk is None or ck is None:
            continue
        for row in row_keys if template.rows.is_outputs else [rk]:
            for col in col_keys if (template.columns and template.columns.is_outputs) else [ck]:
                by_cell.setdefault((row, col), []).append(r)
    cells: dict[tuple[str, str, str], Cell] = {}
    for row in row_keys:
        for col in col_keys:
            runs = by_cell.get((row, col), [])
            for m in template.metrics:
                name = metric_key(template, m, row, col)
                done = [r.value(m.section, name) for r in runs if r.status == "done"]
                values = [v for v in done if v is not None]
                # An output that does not exist (a dash in the paper) has no value in any done run.
                expected = per_cell if (values or not done) else 0
                cells[(row, col, m.name)] = Cell(values, expected, status_counts(runs))
    paper = {}
    for key, value in template.paper.items():
        v = resolve(value)
        if v is None:
            continue
        if not isinstance(v, int | float):
            raise ConfigError(f"template {template.name}: paper value for {key} is not a number: {v!r}")
        paper[key] = float(v)
    table = Table(
        template=template,
        row_keys=row_keys,
        col_keys=col_keys,
        cells=cells,
        paper=paper,
        comparisons=[],
        counts=status_counts(members),
        expected_runs=math.prod(len(v) for v in grid.values()) if grid else len(members),
        failed=[r for r in members if r.status == "failed"],
        records=by_cell,
        notes=[str(resolve(n)) for n in notes],
    )
    table.comparisons = [_compare(table, c, strict) for c in template.comparisons]
    return table


def _cell_by_labels(table: Table, row_label: str, col_label: str, metric: str, strict: bool) -> Cell | None:
    for rk in table.row_keys:
        for ck in table.col_keys:
            if table.row_label(rk) == row_label and table.col_label(ck) == col_label:
                return table.cells.get((rk, ck, metric))
    if not strict:  # a grid narrowed on the command line (method=i1,r1) lacks some compared cells
        return None
    raise ConfigError(
        f"template {table.template.name}: comparison names cell ({row_label!r}, {col_label!r}) "
        "which is not in the table; use row/column labels"
    )


def _compare(table: Table, c, strict: bool) -> ComparisonResult:
    a = _cell_by_labels(table, c.a[0], c.a[1], c.metric, strict)
    b = _cell_by_labels(table, c.b[0], c.b[1], c.metric, strict)
    ma, mb = (a.mean if a else None), (b.mean if b else None)
    ours = None
    if ma is not None and mb is not None:
        if c.kind == "difference":
            ours = ma - mb
        elif mb != 0:
            ours = 100.0 * (mb - ma) / mb
    paper = resolve(c.paper)
    return ComparisonResult(
        c.label, table.template.metric(c.metric), ours, None if paper is None else float(paper), c.kind
    )


def infer_grid(records: list[RunRecord]) -> dict[str, list[str]]:
    """Axes of a grid without a manifest: every override key whose value differs between runs."""
    keys = sorted({k for r in records for k in r.overrides})
    grid = {}
    for k in keys:
        vals: list[str] = []
        for r in records:
            v = r.overrides.get(k)
            if v is not None and v not in vals:
                vals.append(v)
        if len(vals) > 1 or k in SEED_KEYS:
            grid[k] = vals
    return grid


def _per_output(name: str) -> bool:
    """`val/mpjpe@p3l2` (a per-output copy) rather than `val/pckh@0.5` (a threshold)."""
    parts = name.rsplit("@", 1)
    return len(parts) == 2 and not parts[1].replace(".", "", 1).isdigit()


def infer_template(records: list[RunRecord], name: str = "grid") -> Template:
    """A plain layout for a directory of runs without a template: varying axes x monitored metrics."""
    grid = infer_grid(records)
    axes = [k for k in grid if k not in SEED_KEYS]
    done = [r for r in records if r.status == "done" and r.metrics.get("final")]
    names: list[str] = []
    for r in done:
        for k, v in r.metrics["final"].items():
            scalar = isinstance(v, int | float)
            if scalar and k.startswith(("val/", "test/")) and not _per_output(k) and k not in names:
                names.append(k)
    monitor = next((r.metrics.get("monitor") for r in done if r.metrics.get("monitor")), None)
    if monitor in names:
        names.remove(monitor)
        names.insert(0, monitor)
    metrics = [
        MetricSpec(n, n, section="final", decimals=3 if "coco_ap" in n else 1,
                   higher_is_better=not any(s in n for s in ("mpjpe", "loss", "error")))
        for n in names[:6]
    ]
    rows = Dim(axes=axes) if axes else Dim(axes=["seed"]) if "seed" in grid else Dim(axes=[])
    t = Template(name=name, title=f"{name}: runs by {', '.join(axes) or 'seed'}", rows=rows, metrics=metrics)
    t.grid = grid
    return t


def table_values(table: Table, row: str, col: str, metric: str) -> dict[str, Any]:
    """Everything about one cell, for the CSV renderer and tests."""
    cell = table.cells[(row, col, metric)]
    paper = table.paper_value(row, col, metric)
    mean = cell.mean
    return {
        "mean": mean,
        "std": cell.std,
        "n": cell.n,
        "expected": cell.expected,
        "paper": paper,
        "delta": None if mean is None or paper is None else mean - paper,
    }
