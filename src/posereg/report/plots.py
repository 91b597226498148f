"""Report plots as PNG bytes: PCKh curves (Integral Fig. 2), validation curves, metric vs an axis."""

from __future__ import annotations

import io
import statistics

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from posereg.report.curves import run_curve
from posereg.report.table import Table, convergence_metric

CURVE_MAX_THRESHOLD = 0.5


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _ordered(table: Table) -> list[tuple[tuple[str, str], list]]:
    """Cells with runs, in the table's row/column order (legend order = table order)."""
    return [((rk, ck), table.records[(rk, ck)]) for rk in table.row_keys for ck in table.col_keys
            if (rk, ck) in table.records]


def _cell_name(table: Table, rk: str, ck: str) -> str:
    col = table.col_label(ck)
    return f"{table.row_label(rk)} | {col}" if col else table.row_label(rk)


def pckh_curves(table: Table, section: str = "val", name: str = "pckh_curve") -> bytes | None:
    """Mean PCKh@α curve per cell over α in [0, 0.5] (Integral paper Fig. 2); None without curves."""
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    drawn = 0
    for (rk, ck), runs in _ordered(table):
        curves = [np.asarray(r.extra(section, name), dtype=float) for r in runs if r.status == "done"]
        curves = [c for c in curves if c.ndim == 1 and c.size > 1]
        if not curves or len({c.size for c in curves}) != 1:
            continue
        mean = np.mean(curves, axis=0)
        ax.plot(np.linspace(0, CURVE_MAX_THRESHOLD, mean.size), mean, label=_cell_name(table, rk, ck))
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("normalized distance α (PCKh@α)")
    ax.set_ylabel("PCKh (%)")
    ax.set_xlim(0, CURVE_MAX_THRESHOLD)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"PCKh curves ({section})")
    return _png(fig)


def val_curves(table: Table, metric: str | None = None) -> bytes | None:
    """Per cell, the validation metric against epoch (mean over seeds per epoch): the convergence metric."""
    chosen = convergence_metric(table)
    metric = metric or (chosen[0] if chosen else None)
    if metric is None:
        return None
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    drawn = 0
    seen_runs: set = set()
    for (rk, ck), runs in _ordered(table):
        key = tuple(sorted(str(r.path) for r in runs))
        if key in seen_runs:  # output dimensions share the same runs across cells
            continue
        seen_runs.add(key)
        by_epoch: dict[float, list[float]] = {}
        for r in runs:
            for point in run_curve(r, metric):
                by_epoch.setdefault(point.epoch, []).append(point.value)
        if not by_epoch:
            continue
        xs = sorted(by_epoch)
        label = _cell_name(table, rk, ck) if not table.template.rows.is_outputs else "runs"
        ax.plot(xs, [statistics.fmean(by_epoch[x]) for x in xs], marker="o", ms=3, label=label)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"validation curves: {metric}")
    return _png(fig)


def _numeric(labels: list[str]) -> list[float] | None:
    try:
        return [float(x) for x in labels]
    except ValueError:
        return None


def trend(table: Table) -> bytes | None:
    """Metric against a numeric axis (resolution, depth, pyramid): plots.trend or a numeric dimension."""
    spec = dict(table.template.plots.get("trend") or {})
    dim = spec.get("dim")
    if dim is None:
        if table.template.columns is not None and _numeric(table.col_keys):
            dim = "columns"
        elif _numeric(table.row_keys):
            dim = "rows"
        else:
            return None
    along, across = (table.col_keys, table.row_keys) if dim == "columns" else (table.row_keys, table.col_keys)
    label_of = table.col_label if dim == "columns" else table.row_label
    x_map = {str(k): float(v) for k, v in (spec.get("x") or {}).items()}
    xs = [x_map.get(label_of(k), x_map.get(k)) for k in along] if x_map else _numeric(along)
    if xs is None or any(x is None for x in xs):
        return None
    metric = table.template.metric(spec["metric"]) if spec.get("metric") else table.metrics[0]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    drawn = 0
    drawn_xs: set[float] = set()
    for other in across:
        pts = []
        for x, k in zip(xs, along, strict=True):
            rk, ck = (other, k) if dim == "columns" else (k, other)
            cell = table.cells.get((rk, ck, metric.name))
            if cell is not None and cell.mean is not None:
                pts.append((x, cell.mean, cell.std or 0.0))
        if not pts:
            continue
        pts.sort()
        drawn_xs.update(p[0] for p in pts)
        name = table.row_label(other) if dim == "columns" else table.col_label(other)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                    capsize=3, label=name or metric.label)
        drawn += 1
    if not drawn:
        return None
    if all(float(x).is_integer() for x in drawn_xs):
        # stages, pyramids, sizes: ticks at the values plotted, not at 1.2, 1.4, ...
        ax.set_xticks(sorted(drawn_xs))
    ax.set_xlabel(spec.get("xlabel") or (" / ".join(table.template.columns.axes) if dim == "columns"
                                         and table.template.columns and table.template.columns.axes
                                         else dim))
    ax.set_ylabel(metric.label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{metric.label} vs {spec.get('xlabel') or dim}")
    return _png(fig)


def all_plots(table: Table) -> dict[str, bytes]:
    """Every plot that has data, by file stem."""
    out = {}
    for name, make in (("pckh_curves", pckh_curves), ("val_curves", val_curves), ("trend", trend)):
        png = make(table)
        if png is not None:
            out[name] = png
    return out

