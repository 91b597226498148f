"""Validation curves of runs and how much a cell still gained at the end of training (convergence).

A run's curve is its validation metric at each evaluation: (epoch, step, value), from csv/metrics.csv, or
from the `curve:` column of a runs.csv when the report is rebuilt without run directories. A cell is *still
rising* when, averaged over its seeds, its metric improved over the last quarter of the training steps by
more than RISING_FRACTION of its final value: a verdict on such a cell may describe how fast a method learns
rather than what it reaches.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posereg.report.collect import RunRecord

LAST_FRACTION = 0.25
RISING_FRACTION = 0.02
RISING_RULE = (f"still rising: the mean gain of the metric over the last {LAST_FRACTION:.0%} of the steps "
               f"exceeds {RISING_FRACTION:.0%} of its final value")


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of a run: the epoch it closed, the optimizer step and the metric's value."""

    epoch: float
    step: float
    value: float


def read_csv_curves(run_dir: Path, names: list[str]) -> dict[str, list[CurvePoint]]:
    """Per metric name, the evaluations in csv/metrics.csv (rows without a value are skipped)."""
    series: dict[str, list[CurvePoint]] = {}
    for file in sorted(Path(run_dir, "csv").rglob("metrics.csv")):
        try:
            with open(file, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for row in rows:
            for name in names:
                point = _point(row, name)
                if point is not None:
                    series.setdefault(name, []).append(point)
    return series


def _point(row: dict[str, str | None], name: str) -> CurvePoint | None:
    try:
        value, epoch = float(row.get(name) or "nan"), float(row.get("epoch") or "nan")
        step = float(row.get("step") or "nan")
    except ValueError:
        return None
    if not (math.isfinite(value) and math.isfinite(epoch)):
        return None
    return CurvePoint(epoch, step if math.isfinite(step) else epoch, value)


def run_curve(record: RunRecord, name: str) -> list[CurvePoint]:
    """The run's validation curve of `name`, ordered by step (from runs.csv when the record came from one)."""
    if record.curves is not None:
        points = record.curves.get(name, [])
    else:
        points = read_csv_curves(record.path, [name]).get(name, [])
    return sorted(points, key=lambda p: (p.step, p.epoch))


def late_gain(points: list[CurvePoint], higher_is_better: bool = True) -> float | None:
    """Improvement of the metric from LAST_FRACTION before the last step to the end (linear interpolation
    between evaluations; positive = better); None with fewer than two evaluations."""
    if len(points) < 2:
        return None
    start = _interpolate(points, (1.0 - LAST_FRACTION) * points[-1].step)  # training starts at step 0
    gain = points[-1].value - start
    return gain if higher_is_better else -gain


def _interpolate(points: list[CurvePoint], step: float) -> float:
    if step <= points[0].step:
        return points[0].value
    for p, q in zip(points, points[1:], strict=False):
        if p.step <= step <= q.step:
            if q.step == p.step:
                return q.value
            return p.value + (q.value - p.value) * (step - p.step) / (q.step - p.step)
    return points[-1].value


@dataclass(frozen=True)
class Convergence:
    """How one cell ended: the metric's final value and its late gain, each as the mean over seeds."""

    metric: str
    final: float
    gain: float
    gain_std: float | None
    steps: float
    n: int

    @property
    def rising(self) -> bool:
        """True when the cell was still improving at the end (RISING_RULE)."""
        return self.gain > RISING_FRACTION * abs(self.final)


def cell_convergence(records: list[RunRecord], name: str, higher_is_better: bool) -> Convergence | None:
    """The convergence of a cell's done runs for metric `name`; None when no run has a curve of it."""
    finals, gains, steps = [], [], []
    for r in records:
        if r.status != "done":
            continue
        points = run_curve(r, name)
        gain = late_gain(points, higher_is_better)
        if gain is None:
            continue
        finals.append(points[-1].value)
        gains.append(gain)
        steps.append(points[-1].step)
    if not gains:
        return None
    return Convergence(name, statistics.fmean(finals), statistics.fmean(gains),
                       statistics.stdev(gains) if len(gains) > 1 else None, max(steps), len(gains))
