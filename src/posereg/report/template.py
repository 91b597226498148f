"""Multirun templates: the grid, the fixed settings, the table layout and the paper claims of one paper table.

A template is a YAML file in multirun_templates/ (`grid`, `fixed`, `cpu:`/`real:` presets, `table`, `plots`).
`table.claims` lists the paper's claims the grid tests, as data; the report gives each a verdict from the
per-seed values (posereg.report.claims). One claim::

    claims:
      - label: "I1 beats H1 in PCKh@0.1 and in AUC"    # the claim, in words
        a: I1                    # a cell: a row label, or {row: ROW, col: COL} (labels, as in the table)
        b: H1
        metrics: {val/pckh@0.1: 12.1, val/auc: 5.4}    # metric -> the paper's a - b (number, `ref:` path or null)
        expect: a > b            # a > b | a < b | a better | a worse (by the metric's higher_is_better)
      - label: "every integral variant beats its heat-map counterpart"
        metric: val/auc          # one metric (`paper:` beside it gives the paper's difference)
        expect: a better
        pairs: [{a: I1, b: H1, paper: 5.4}, {a: I2, b: H2}, {a: I3, b: H3}]
      - label: "I1 beats H1 at every depth"
        metric: val/auc
        a: I1                    # with `each`, a and b name only the other coordinate
        b: H1
        each: columns            # one pair per column label (`rows`: per row label)
        expect: a > b
      - label: "halving the heat map costs H1 more AUC than I1"       # a difference of differences
        metric: val/auc
        a: {row: H1, col: "(a)", minus: {row: H1, col: "(b)"}}     # H1(a) - H1(b)
        b: {row: I1, col: "(a)", minus: {row: I1, col: "(b)"}}     # I1(a) - I1(b)
        paper: 4.2
        expect: a > b
      - label: "I* improves R1 (MPJPE)"
        kind: reduction_pct      # ours and the paper: 100 (b - a) / b; the verdict tests a - b
        a: {row: I*, col: strategy 1}
        b: {row: R1, col: strategy 1}
        metric: test/mpjpe
        paper: 6.0               # `expect` defaults to the paper's sign: here a < b
        mode: real               # optional: the claim applies only to --real (or only to cpu) grids
      - label: "I1 and H1 are comparable in PCKh@0.5 (the paper: +0.5 only)"   # a claim of smallness
        kind: equivalence        # two one-sided tests: the 90 % interval inside (-margin, margin)
        margin: 2.0              # required: the largest |a - b| that still counts as comparable, metric units
        a: I1
        b: H1
        metric: val/pckh@0.5
        paper: 0.5
        magnitude: none          # optional: relative | protocol | none (default: relative for reduction_pct,
                                 # else protocol: the paper's value is compared only on the paper's protocol)

A claim with several pairs (`pairs`, `each`, or `metrics` with more than one metric) is reproduced only if
every pair is, and contradicted if a pair is after Holm's correction over its pairs (posereg.report.claims).
A pair without a stated `paper` difference takes it from the table's `paper:` cells when all its cells have one.
A claim naming a row, column or metric the template does not produce is a ConfigError.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posereg.errors import ConfigError
from posereg.paths import TEMPLATES_DIR
from posereg.report.claim_spec import Claim, parse_claims

SECTIONS = ("final", "best", "test", "complexity")  # complexity: params_m, gmacs of the trained network


def value_str(value: Any) -> str:
    """A YAML scalar as Hydra writes it in an override (true/false lower case, None as null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(value_str(v) for v in value) + "]"
    return str(value)


def split_values(value: Any) -> list[str]:
    """Grid axis values from `a,b,c`, a YAML list, or a single scalar."""
    if isinstance(value, list | tuple):
        return [value_str(v) for v in value]
    text = value_str(value)
    return [v.strip() for v in text.split(",") if v.strip()]


@dataclass
class Dim:
    """One table dimension (rows or column groups): grid axes, or network outputs of every run."""

    axes: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_outputs(self) -> bool:
        """True when the dimension enumerates network outputs rather than grid cells."""
        return bool(self.outputs)

    def label(self, key: str) -> str:
        """Display label of a value key (`v` or `v1,v2` for several axes)."""
        return self.labels.get(key, key)


def dim_values(dim: Dim, grid: dict[str, list[str]]) -> list[str]:
    """Value keys of a dimension in order: labels' order first, then the grid's order."""
    if dim.is_outputs:
        return list(dim.outputs)
    combos = [",".join(c) for c in itertools.product(*(grid.get(a, []) for a in dim.axes))]
    ordered = [k for k in dim.labels if k in combos]
    return ordered + [k for k in combos if k not in ordered]


@dataclass
class MetricSpec:
    """One reported metric: its stored name, label, metrics.json section and display precision."""

    name: str
    label: str
    section: str = "final"
    decimals: int = 1
    higher_is_better: bool = True


@dataclass
class Template:
    """A parsed multirun template."""

    name: str
    title: str
    path: Path | None = None
    description: str = ""
    paper_source: str = ""
    command: str = ""
    kind: str = "train"
    grid: dict[str, list[str]] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    cpu: dict[str, str] = field(default_factory=dict)
    real: dict[str, str] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)
    rows: Dim = field(default_factory=Dim)
    columns: Dim | None = None
    metrics: list[MetricSpec] = field(default_factory=list)
    metric_name: str = "{metric}"
    paper: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)
    is_real: bool = False
    inferred: bool = False

    def row_keys(self, grid: dict[str, list[str]] | None = None) -> list[str]:
        """Row value keys in order (over `grid`, default the template's)."""
        return dim_values(self.rows, self.grid if grid is None else grid)

    def col_keys(self, grid: dict[str, list[str]] | None = None) -> list[str]:
        """Column value keys in order ([''] without column groups)."""
        return dim_values(self.columns, self.grid if grid is None else grid) if self.columns else [""]

    def metric(self, name: str) -> MetricSpec:
        """The metric spec with this name or label."""
        for m in self.metrics:
            if name in (m.name, m.label):
                return m
        raise ConfigError(f"template {self.name}: metric {name!r} is not in table.metrics")


def template_path(name_or_path: str | Path) -> Path:
    """Resolve a template name (`integral_table1`) or a YAML path to an existing file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = TEMPLATES_DIR / f"{p.name.removesuffix('.yaml')}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(list_templates()) or "(none)"
    raise ConfigError(f"multirun template {name_or_path!r} not found in {TEMPLATES_DIR}; known: {known}")


def list_templates() -> list[str]:
    """Names of the templates shipped in multirun_templates/."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml")) if TEMPLATES_DIR.is_dir() else []


def load_template(name_or_path: str | Path, real: bool = False) -> Template:
    """Load and validate a template file; `real` applies its `real:` settings and `real_labels`."""
    path = template_path(name_or_path)
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    return parse_template(raw, path, real=real)


def _dim(raw: Any, where: str, real: bool = False) -> Dim:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `axis`, `axes` or `outputs`")
    axes = raw.get("axes") or ([raw["axis"]] if "axis" in raw else [])
    outputs_raw = raw.get("outputs")
    labels_raw = raw.get("real_labels") if real and raw.get("real_labels") else raw.get("labels")
    labels = {value_str(k): str(v) for k, v in (labels_raw or {}).items()}
    if bool(axes) == bool(outputs_raw):
        raise ConfigError(f"{where}: give exactly one of `axis`/`axes` (grid axes) or `outputs`")
    outputs: list[str] = []
    if outputs_raw:
        if isinstance(outputs_raw, dict):
            outputs = [value_str(k) for k in outputs_raw]
            labels.update({value_str(k): str(v) for k, v in outputs_raw.items()})
        else:
            outputs = split_values(outputs_raw)
    return Dim(axes=[str(a) for a in axes], outputs=outputs, labels=labels)


def parse_template(raw: dict, path: Path | None = None, real: bool = False) -> Template:
    """Build a Template from its YAML mapping; raises ConfigError naming the bad key.

    `fixed` holds settings of both modes; the `cpu:` (default) or `real:` (--real) block names the preset
    (`experiment`) and may replace grid-axis values -- nothing else, so a budget is written once, in the
    preset. With `real`, dimensions use their `real_labels`.
    """
    name = str(raw.get("name") or (path.stem if path else "grid"))
    where = f"multirun template {name}"
    kind = str(raw.get("kind", "train"))
    if kind not in ("train", "bench"):
        raise ConfigError(f"{where}: kind must be 'train' or 'bench', got {kind!r}")
    table = raw.get("table") or {}
    if "rows" not in table or "metrics" not in table:
        raise ConfigError(f"{where}: table.rows and table.metrics are required")
    metrics = []
    for m in table["metrics"]:
        m = {"name": m} if isinstance(m, str) else dict(m)
        section = m.get("from", table.get("from", "final"))
        if section not in SECTIONS:
            raise ConfigError(f"{where}: metric {m['name']}: `from` must be one of {SECTIONS}, got {section!r}")
        metrics.append(
            MetricSpec(
                name=str(m["name"]),
                label=str(m.get("label", m["name"])),
                section=section,
                decimals=int(m.get("decimals", 1)),
                higher_is_better=bool(m.get("higher_is_better", True)),
            )
        )
    t = Template(
        name=name,
        title=str(raw.get("title", name)),
        path=path,
        description=str(raw.get("description", "")).strip(),
        paper_source=str(raw.get("paper_source", "")),
        command=str(raw.get("command") or f"posereg-sweep {name}"),
        kind=kind,
        grid={str(k): split_values(v) for k, v in (raw.get("grid") or {}).items()},
        fixed={str(k): value_str(v) for k, v in (raw.get("fixed") or {}).items()},
        cpu={str(k): value_str(v) for k, v in (raw.get("cpu") or {}).items()},
        real={str(k): value_str(v) for k, v in (raw.get("real") or {}).items()},
        bench=dict(raw.get("bench") or {}),
        rows=_dim(table["rows"], f"{where}: table.rows", real),
        columns=_dim(table["columns"], f"{where}: table.columns", real) if table.get("columns") else None,
        metrics=metrics,
        metric_name=str(table.get("metric_name", "{metric}")),
        notes=[str(n) for n in table.get("notes") or []],
        plots=dict(raw.get("plots") or {}),
    )
    t.is_real = real
    for mode, block in (("cpu", t.cpu), ("real", t.real)):
        extra = sorted(k for k in block if k != "experiment" and k not in t.grid)
        if extra:
            raise ConfigError(f"{where}: the `{mode}:` block may only name a preset (experiment) and values of grid "
                              f"axes, not {extra}: budgets and settings belong to the preset (conf/experiment/)")
    if "experiment" in t.fixed:
        raise ConfigError(f"{where}: name the preset in the `cpu:` and `real:` blocks, not in `fixed:`")
    if real and not t.real:
        raise ConfigError(f"{where} has no `real:` section; pass data=<dataset> overrides instead of --real")
    for key, value in (raw.get("real" if real else "cpu") or {}).items():
        if key in t.grid:
            t.grid[str(key)] = split_values(value)  # a YAML list keeps values that contain commas whole
        else:
            t.fixed[str(key)] = value_str(value)
    for axis in t.grid:  # a grid axis overrides a fixed setting of the same key
        t.fixed.pop(axis, None)
    for dim in (t.rows, t.columns):
        for axis in dim.axes if dim else []:
            if axis not in t.grid:
                raise ConfigError(f"{where}: table axis {axis!r} is not a key of `grid`")
    t.paper = _parse_paper(table.get("paper") or {}, t, where)
    if "comparisons" in table:
        raise ConfigError(f"{where}: table.comparisons is now table.claims (see posereg.report.template)")
    t.claims = parse_claims(table.get("claims") or [], t, where)
    return t


def _parse_paper(raw: dict, t: Template, where: str) -> dict[tuple[str, str, str], Any]:
    """Paper cells keyed (row label, column label, metric name); values are numbers or `ref:` paths."""
    out: dict[tuple[str, str, str], Any] = {}
    for row, inner in raw.items():
        if t.columns is None:
            for metric, value in inner.items():
                out[(str(row), "", t.metric(str(metric)).name)] = value
        else:
            for col, metrics in inner.items():
                for metric, value in metrics.items():
                    out[(str(row), value_str(col), t.metric(str(metric)).name)] = value
    return out
