"""Read run directories (status.json, metrics.json, .hydra/overrides.yaml, csv/metrics.csv) into records.

The files and their formats are `posereg.runs.RunDir`'s; this module turns them into what a report needs.
"""

from __future__ import annotations

import csv
import glob
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from posereg.errors import DataError
from posereg.jsonio import DamagedFileError
from posereg.runs import STATUSES, RunDir, find_run_dirs


@dataclass
class RunRecord:
    """What the report knows about one run, from its files only."""

    path: Path
    run_key: str
    status: str
    overrides: dict[str, str]
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    git_commit: str | None = None
    duration_s: float | None = None
    experiment: str | None = None
    # validation curves by metric name when they came with the record (runs.csv); None: read csv/metrics.csv
    curves: dict[str, list[Any]] | None = None

    @property
    def seed(self) -> str | None:
        """The run's seed as written in its overrides (None when it used the default)."""
        return self.overrides.get("seed")

    @property
    def setup(self) -> dict[str, Any]:
        """What was trained (metrics.json `setup`: data, backbone, steps, ...); empty when not recorded."""
        setup = self.metrics.get("setup")
        return setup if isinstance(setup, dict) else {}

    def value(self, section: str, name: str) -> float | None:
        """A scalar from metrics.json[section][name], or None when absent or not finite."""
        v = (self.metrics.get(section) or {}).get(name)
        if isinstance(v, int | float) and math.isfinite(float(v)):
            return float(v)
        return None

    def extra(self, section: str, name: str) -> Any:
        """A curve or per-part value from metrics.json extras (e.g. extras.val.pckh_curve)."""
        return ((self.metrics.get("extras") or {}).get(section) or {}).get(name)


def parse_override(line: str) -> tuple[str, str] | None:
    """`+key=value` / `key=value` -> (key, value); deletions (`~key`) and bare words -> None."""
    line = line.strip()
    if not line or line.startswith("~") or "=" not in line:
        return None
    key, value = line.split("=", 1)
    return key.lstrip("+"), value.strip().strip("'\"")


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _read(read: Any) -> dict:
    """A run file's content, {} when it is absent or damaged (a file being rewritten by a live run reads
    as garbage for a moment: treated as absent)."""
    try:
        return read() or {}
    except (DamagedFileError, OSError):
        return {}


def load_run(path: Path) -> RunRecord:
    """Read one run directory."""
    run = RunDir(path)
    status = _read(run.read_status)
    overrides = dict(p for p in map(parse_override, run.overrides()) if p is not None)
    state = str(status.get("status", "pending"))
    return RunRecord(
        path=run.path,
        run_key=str(status.get("run_key") or run.path.name),
        status=state if state in STATUSES else "pending",
        overrides=overrides,
        error=status.get("error"),
        metrics=_read(run.read_metrics),
        started_at=_time(status.get("started_at")),
        ended_at=_time(status.get("ended_at")),
        attempts=int(status.get("attempts") or 0),
        git_commit=str(status["git_commit"]) if status.get("git_commit") else None,
        duration_s=_seconds(status.get("duration_s")),
        experiment=str(status.get("experiment") or run.path.parent.name),
    )


def expand(paths: list[str | Path]) -> list[Path]:
    """Grid dirs, run dirs or glob patterns -> existing directories; DataError when none exists."""
    out: list[Path] = []
    for p in paths:
        matches = sorted(glob.glob(str(p))) or ([str(p)] if Path(p).exists() else [])
        if not matches:
            raise DataError(f"no run directory matches {p!r}; pass a grid dir such as runs/integral_table1")
        out += [Path(m) for m in matches if Path(m).is_dir()]
    return out


def collect(paths: list[str | Path]) -> list[RunRecord]:
    """Every run under the given grid dirs / run dirs / globs, each read once."""
    seen: dict[Path, RunRecord] = {}
    for root in expand(paths):
        for d in find_run_dirs(root):
            seen.setdefault(d.resolve(), load_run(d))
    return list(seen.values())


def read_csv_metrics(run_dir: Path, names: list[str] | None = None) -> dict[str, list[tuple[float, float]]]:
    """Per metric, (epoch, value) pairs from csv/metrics.csv, skipping empty cells (CSVLogger rows)."""
    files = sorted(RunDir(run_dir).csv_dir.rglob("metrics.csv"))
    series: dict[str, list[tuple[float, float]]] = {}
    for file in files:
        with open(file, newline="") as f:
            for row in csv.DictReader(f):
                epoch = row.get("epoch") or row.get("step") or ""
                for key, text in row.items():
                    if key in ("epoch", "step") or not text or (names and key not in names):
                        continue
                    try:
                        value, x = float(text), float(epoch)
                    except ValueError:
                        continue
                    if math.isfinite(value):
                        series.setdefault(key, []).append((x, value))
    return series


def status_counts(records: list[RunRecord]) -> dict[str, int]:
    """How many runs are in each status."""
    counts = dict.fromkeys(STATUSES, 0)
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts
