"""Build a template's table from run records: mean ± std over seeds, paper numbers and claim verdicts."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from posereg.errors import ConfigError
from posereg.report.collect import RunRecord, status_counts
from posereg.report.curves import Convergence, cell_convergence
from posereg.report.members import DEFAULT, Foreign, axis_value, split_members
from posereg.report.paper import resolve
from posereg.report.protocol import Protocol, check_protocol
from posereg.report.template import Dim, MetricSpec, Template
from posereg.runs.files import DIRTY_SUFFIX

SEED_KEYS = ("seed",)
UNKNOWN_COMMIT = "unknown"
MIXED_MARK = "†"
DIRTY_MARK = "‡"


@dataclass
class Cell:
    """Values of one (row, column, metric) cell over the runs (seeds) that are done."""

    values: list[float]
    expected: int
    statuses: dict[str, int]
    by_seed: dict[str, float] = field(default_factory=dict)
    commits: set[str] = field(default_factory=set)

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
class Table:
    """A report table in the template's layout, with everything the report says about its runs."""

    template: Template
    row_keys: list[str]
    col_keys: list[str]
    cells: dict[tuple[str, str, str], Cell]
    paper: dict[tuple[str, str, str], float]
    counts: dict[str, int]
    expected_runs: int
    failed: list[RunRecord]
    records: dict[tuple[str, str], list[RunRecord]]
    notes: list[str] = field(default_factory=list)
    members: list[RunRecord] = field(default_factory=list)
    all_records: list[RunRecord] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)
    protocol: Protocol = field(default_factory=Protocol)
    claims: list[Any] = field(default_factory=list)  # posereg.report.claims.ClaimResult, filled by the builder
    grid: dict[str, list[str]] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    convergence: dict[tuple[str, str], Convergence] = field(default_factory=dict)
    # the training budget these runs share (`2304 steps`), and the same grid at its other budgets
    budget: str = ""
    others: list[Table] = field(default_factory=list)

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

    def show_delta(self) -> bool:
        """Δ = ours − paper only where the runs follow the paper's protocol (or it cannot be checked)."""
        return self.protocol.matches is not False

    def row_labels(self) -> list[str]:
        """Row labels in order."""
        return [self.row_label(k) for k in self.row_keys]

    def paper_value(self, row: str, col: str, metric: str) -> float | None:
        """Paper number of a cell, by keys."""
        return self.paper.get((self.row_label(row), self.col_label(col), metric))

    def cell_at(self, row_label: str, col_label: str, metric: str) -> Cell | None:
        """A cell by its labels; None when the grid (narrowed on the command line) lacks it."""
        for rk in self.row_keys:
            for ck in self.col_keys:
                if self.row_label(rk) == row_label and self.col_label(ck) == col_label:
                    return self.cells.get((rk, ck, metric))
        return None

    def commit_counts(self) -> dict[str, int]:
        """Done runs per git commit (`+dirty` counts as its own commit), most common first."""
        done = [r for r in self.members if r.status == "done"]
        counts = Counter(r.git_commit or UNKNOWN_COMMIT for r in done)
        latest = {c: max((r.ended_at.timestamp() if r.ended_at else 0.0) for r in done
                         if (r.git_commit or UNKNOWN_COMMIT) == c) for c in counts}
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], -latest[kv[0]])))

    def mixed_commits(self) -> bool:
        """True when the done runs come from more than one commit."""
        return len(self.commit_counts()) > 1

    def is_rising(self, row_label: str, col_label: str) -> bool:
        """True when the cell's runs were still improving at the end of training (posereg.report.curves)."""
        for rk in self.row_keys:
            for ck in self.col_keys:
                if self.row_label(rk) == row_label and self.col_label(ck) == col_label:
                    conv = self.convergence.get((rk, ck))
                    return bool(conv and conv.rising)
        return False

    def is_dirty(self, cell: Cell) -> bool:
        """True for a cell with a run on uncommitted code (a `+dirty` commit): not reproducible from the repository."""
        return any(c.endswith(DIRTY_SUFFIX) for c in cell.commits)

    def is_marked(self, cell: Cell) -> bool:
        """True for a cell with runs from a commit other than the grid's most common one, or from several."""
        counts = self.commit_counts()
        return len(counts) > 1 and bool(cell.commits) and cell.commits != {next(iter(counts))}


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


def _run_key(dim: Dim | None, record: RunRecord) -> str:
    if dim is None or dim.is_outputs:
        return ""
    return ",".join(axis_value(record, a) for a in dim.axes)


def metric_key(template: Template, metric: MetricSpec, row: str, col: str) -> str:
    """Stored metric name of a cell (per-output metrics use template.metric_name)."""
    fields = {"metric": metric.name}
    if template.rows.is_outputs:
        fields["row"] = row
    if template.columns is not None and template.columns.is_outputs:
        fields["col"] = col
    return template.metric_name.format(**fields) if len(fields) > 1 else metric.name


def replicate_key(record: RunRecord, grid: dict[str, list[str]], table_axes: set[str]) -> str:
    """What tells apart the runs of one cell (`seed=0`): the values of the grid axes the table does not show."""
    return ",".join(f"{k}={axis_value(record, k)}" for k in sorted(grid) if k not in table_axes) or record.run_key


def _cells(template: Template, by_cell: dict[tuple[str, str], list[RunRecord]], row_keys: list[str],
           col_keys: list[str], per_cell: int | None, replicate: Any) -> dict[tuple[str, str, str], Cell]:
    cells: dict[tuple[str, str, str], Cell] = {}
    for row in row_keys:
        for col in col_keys:
            runs = by_cell.get((row, col), [])
            done = [r for r in runs if r.status == "done"]
            for m in template.metrics:
                name = metric_key(template, m, row, col)
                by_seed: dict[str, float] = {}
                commits: set[str] = set()
                for r in done:
                    v = r.value(m.section, name)
                    if v is not None:
                        by_seed[replicate(r)] = v
                        commits.add(r.git_commit or UNKNOWN_COMMIT)
                # An output that does not exist (a dash in the paper) has no value in any done run.
                expected = (len(runs) if per_cell is None else per_cell) if (by_seed or not done) else 0
                cells[(row, col, m.name)] = Cell(list(by_seed.values()), expected, status_counts(runs), by_seed,
                                                 commits)
    return cells


def _paper(template: Template) -> dict[tuple[str, str, str], float]:
    paper = {}
    for key, value in template.paper.items():
        v = resolve(value)
        if v is None:
            continue
        if not isinstance(v, int | float):
            raise ConfigError(f"template {template.name}: paper value for {key} is not a number: {v!r}")
        paper[key] = float(v)
    return paper


def build_table(
    template: Template,
    records: list[RunRecord],
    grid: dict[str, list[str]] | None = None,
    fixed: dict[str, str] | None = None,
    experiment: str | None = None,
) -> Table:
    """Aggregate runs into the template's layout over `grid` (default: the template's); every other run
    under the folder is kept as a foreign run with the reason. Claims are evaluated by the caller
    (posereg.report.build)."""
    grid = dict(grid if grid is not None else template.grid)
    if not grid:
        grid = infer_grid(records)
    members, foreign = split_members(records, grid, fixed, experiment)
    row_keys, col_keys = template.row_keys(grid), template.col_keys(grid)
    table_axes = set(template.rows.axes) | set(template.columns.axes if template.columns else [])
    by_cell: dict[tuple[str, str], list[RunRecord]] = {}
    for r in members:
        rk, ck = _run_key(template.rows, r), _run_key(template.columns, r)
        for row in row_keys if template.rows.is_outputs else [rk]:
            for col in col_keys if (template.columns and template.columns.is_outputs) else [ck]:
                by_cell.setdefault((row, col), []).append(r)
    if template.inferred:  # a folder of runs, not a planned grid: only the points that exist
        row_keys = [rk for rk in row_keys if any((rk, ck) in by_cell for ck in col_keys)]
        col_keys = [ck for ck in col_keys if any((rk, ck) in by_cell for rk in row_keys)]
        per_cell, expected_runs = None, len(members)
    else:
        per_cell = math.prod(len(v) for k, v in grid.items() if k not in table_axes)
        expected_runs = math.prod(len(v) for v in grid.values()) if grid else len(members)
    table = Table(
        template=template,
        row_keys=row_keys,
        col_keys=col_keys,
        cells=_cells(template, by_cell, row_keys, col_keys, per_cell,
                     lambda r: replicate_key(r, grid, table_axes)),
        paper=_paper(template),
        counts=status_counts(members),
        expected_runs=expected_runs,
        failed=[r for r in members if r.status == "failed"],
        records=by_cell,
        notes=[str(resolve(n)) for n in template.notes],
        members=members,
        all_records=list(records),
        foreign=foreign,
        protocol=check_protocol(template, members),
        grid=grid,
        fixed=dict(fixed or {}),
    )
    table.convergence = _convergence(table)
    return table


def convergence_metric(table: Table) -> tuple[str, bool] | None:
    """The validation metric whose curve tells convergence, and whether higher is better: `plots.val_curve`,
    else the first val/ metric of the table, else the runs' monitor."""
    chosen = table.template.plots.get("val_curve")
    if not chosen:
        chosen = next((m.name for m in table.metrics if m.name.startswith("val/")), None)
    if not chosen:
        chosen = next((r.metrics.get("monitor") for r in table.members if r.metrics.get("monitor")), None)
    if not chosen:
        return None
    spec = next((m for m in table.metrics if m.name == chosen), None)
    lower = any(s in str(chosen) for s in ("mpjpe", "loss", "error"))
    return str(chosen), spec.higher_is_better if spec else not lower


def _convergence(table: Table) -> dict[tuple[str, str], Convergence]:
    """Per cell: the late gain of the convergence metric (per network output where the table's columns or rows
    are outputs and the runs logged `<metric>@<output>`)."""
    chosen = convergence_metric(table)
    if chosen is None:
        return {}
    name, higher = chosen
    out = {}
    for (rk, ck), runs in table.records.items():
        fields = {"metric": name}
        if table.template.rows.is_outputs:
            fields["row"] = rk
        if table.template.columns is not None and table.template.columns.is_outputs:
            fields["col"] = ck
        per_output = table.template.metric_name.format(**fields) if len(fields) > 1 else name
        conv = cell_convergence(runs, per_output, higher)  # an output a run lacks has no curve: no entry
        if conv is not None:
            out[(rk, ck)] = conv
    return out


def infer_grid(records: list[RunRecord]) -> dict[str, list[str]]:
    """Axes of a folder of runs without a manifest: every override key whose value differs between runs
    (a run that does not set a key has the value DEFAULT)."""
    keys = sorted({k for r in records for k in r.overrides})
    grid = {}
    for k in keys:
        vals: list[str] = []
        for r in records:
            v = axis_value(r, k)
            if v not in vals:
                vals.append(v)
        if len(vals) > 1 or k in SEED_KEYS:
            grid[k] = vals
    return grid


def _per_output(name: str) -> bool:
    """`val/mpjpe@p3l2` (a per-output copy) rather than `val/pckh@0.5` (a threshold)."""
    parts = name.rsplit("@", 1)
    return len(parts) == 2 and not parts[1].replace(".", "", 1).isdigit()


def infer_template(records: list[RunRecord], name: str = "grid") -> Template:
    """A plain layout for a folder of runs without a template: varying overrides x monitored metrics."""
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
    for r in records:  # `method=h1, data.input_size=64` rather than `h1,64`; `defaults` for a bare run
        key = _run_key(rows, r)
        named = [f"{a}={axis_value(r, a)}" for a in rows.axes if axis_value(r, a) != DEFAULT]
        rows.labels.setdefault(key, "defaults" if not named else ", ".join(named) if len(rows.axes) > 1 else key)
    t = Template(name=name, title=f"{name}: runs by {', '.join(axes) or 'seed'}", rows=rows, metrics=metrics)
    t.grid = grid
    t.inferred = True
    return t


def table_values(table: Table, row: str, col: str, metric: str) -> dict[str, Any]:
    """Everything about one cell, for the CSV renderer and tests."""
    cell = table.cells[(row, col, metric)]
    paper = table.paper_value(row, col, metric)
    mean = cell.mean
    delta = None if mean is None or paper is None or not table.show_delta() else mean - paper
    return {"mean": mean, "std": cell.std, "n": cell.n, "expected": cell.expected, "paper": paper, "delta": delta,
            "marked": table.is_marked(cell)}

