"""runs.csv: one row per run of a grid, everything its report reads, so the report rebuilds without run dirs.

Columns (one row per run, sorted by run key):

* identity: `template`, `real`, `grid` and `fixed` (the sweep's manifest, JSON), `experiment`, `run` (the run
  key), `cell` (its table row | column), `seed`, `budget_scale`, `status`, `attempts`, `error`, `overrides`
  (JSON list, as .hydra/overrides.yaml, without the machine's `paths.*`; a path to another run relative to the
  grid folder);
* provenance: `commit` (40 hex digits), `dirty` (true when the run's code had uncommitted changes),
  `device`, `device_model`, `precision`, `torch_threads`, `steps`, `started_at`, `ended_at`, `duration_s`;
* results: one column per scalar metric, named `<section>:<name>` (e.g. `final:val/pckh@0.5`, `test:test/mpjpe`,
  `complexity:gmacs`), `monitor`, and `curve:<metric>` per validation curve the report reads (JSON list of
  [epoch, step, value]);
* what the header and plots read besides: `setup` and `extras` (metrics.json's sections, JSON).

Numbers are written with repr (exact round trip). No absolute path: runs are named by experiment and key.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from posereg.errors import DataError
from posereg.report.collect import RunRecord, _seconds, _time, parse_override
from posereg.report.curves import CurvePoint, run_curve
from posereg.runs.files import DIRTY_SUFFIX

SCALAR_SECTIONS = ("final", "test", "complexity")
IDENTITY = ["template", "real", "grid", "fixed", "experiment", "run", "cell", "seed", "budget_scale", "status",
            "attempts", "error", "overrides"]
PROVENANCE = ["commit", "dirty", "device", "device_model", "precision", "torch_threads", "steps", "started_at",
              "ended_at", "duration_s"]
TRAILING = ["monitor", "setup", "extras"]


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return repr(value) if isinstance(value, float) else str(value)


def _scalars(section: Any) -> dict[str, float | int]:
    if not isinstance(section, dict):
        return {}
    return {k: v for k, v in section.items() if isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(float(v))}


def _iso(t: Any) -> str:
    return t.isoformat() if t is not None else ""


def _commit(record: RunRecord) -> tuple[str, str]:
    commit = record.git_commit or ""
    return commit.removesuffix(DIRTY_SUFFIX), ("true" if commit.endswith(DIRTY_SUFFIX) else "false") if commit else ""


def _portable_overrides(record: RunRecord) -> list[str]:
    """The run's overrides without the machine's paths: `paths.*` left out (where runs were written), another run
    named by its absolute path (a previous stage) written relative to this run's grid folder."""
    out = []
    for key, value in record.overrides.items():
        if key.lstrip("+~").startswith("paths."):
            continue
        text = str(value).strip("'\"")
        if text.startswith("/"):
            value = os.path.relpath(text, record.path.parent)
        out.append(f"{key}={value}")
    return out


def run_row(record: RunRecord, manifest: dict[str, Any], cell: str, curve_names: list[str]) -> dict[str, str]:
    """One run as a runs.csv row."""
    setup = record.setup
    commit, dirty = _commit(record)
    row = {
        "template": str(manifest.get("template", "")), "real": "true" if manifest.get("real") else "false",
        "grid": json.dumps(manifest.get("grid") or {}), "fixed": json.dumps(manifest.get("fixed") or {}),
        "experiment": record.experiment or "", "run": record.path.name, "cell": cell,
        "seed": record.overrides.get("seed", ""), "budget_scale": record.overrides.get("budget_scale", ""),
        "status": record.status, "attempts": str(record.attempts), "error": (record.error or "").strip(),
        "overrides": json.dumps(_portable_overrides(record)),
        "commit": commit, "dirty": dirty,
        **{k: _num(setup.get(k)) for k in ("device", "device_model", "precision", "torch_threads", "steps")},
        "started_at": _iso(record.started_at), "ended_at": _iso(record.ended_at),
        "duration_s": _num(record.duration_s),
        "monitor": str(record.metrics.get("monitor") or ""),
        "setup": json.dumps(setup, sort_keys=True) if setup else "",
        "extras": json.dumps(record.metrics.get("extras") or {}, sort_keys=True),
    }
    for section in SCALAR_SECTIONS:
        for name, value in _scalars(record.metrics.get(section)).items():
            row[f"{section}:{name}"] = _num(value)
    for name in curve_names:
        points = run_curve(record, name) if record.status == "done" else []
        row[f"curve:{name}"] = json.dumps([[p.epoch, p.step, p.value] for p in points]) if points else ""
    return row


def render_runs_csv(rows: list[dict[str, str]]) -> str:
    """The rows as CSV text: fixed columns first, then metric columns and curves in sorted order."""
    extra = sorted({k for r in rows for k in r} - set(IDENTITY + PROVENANCE + TRAILING))
    metrics = [k for k in extra if not k.startswith("curve:")]
    curves = [k for k in extra if k.startswith("curve:")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=IDENTITY + PROVENANCE + metrics + ["monitor", *curves, "setup", "extras"],
                            lineterminator="\n", restval="")
    writer.writeheader()
    for r in sorted(rows, key=lambda r: (r["experiment"], r["run"])):
        writer.writerow(r)
    return buf.getvalue()


def _json(text: str, what: str, run: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError as err:
        raise DataError(f"runs.csv: run {run!r}: column {what} is not JSON ({err})") from None


def _float(text: str) -> float | int | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(text) if text.lstrip("-").isdigit() else value


def record_from_row(row: dict[str, str]) -> RunRecord:
    """A runs.csv row as the RunRecord the report builds from."""
    run = row.get("run") or ""
    overrides = dict(p for p in map(parse_override, _json(row.get("overrides", ""), "overrides", run) or [])
                     if p is not None)
    metrics: dict[str, Any] = {s: {} for s in SCALAR_SECTIONS}
    curves: dict[str, list[Any]] = {}
    for key, text in row.items():
        section, _, name = (key or "").partition(":")
        if section in SCALAR_SECTIONS and name and text != "":
            metrics[section][name] = _float(text)
        elif section == "curve" and text:
            curves[name] = [CurvePoint(*map(float, p)) for p in _json(text, key, run)]
    metrics["best"] = {}
    metrics["extras"] = _json(row.get("extras", ""), "extras", run) or {}
    metrics["setup"] = _json(row.get("setup", ""), "setup", run) or {}
    if row.get("monitor"):
        metrics["monitor"] = row["monitor"]
    if row.get("status") != "done" and not any(metrics[s] for s in SCALAR_SECTIONS):
        metrics = {}
    commit = row.get("commit") or None
    if commit and row.get("dirty") == "true":
        commit += DIRTY_SUFFIX
    experiment = row.get("experiment") or None
    return RunRecord(path=Path(experiment or ".") / run, run_key=run, status=row.get("status") or "pending",
                     overrides=overrides, error=row.get("error") or None, metrics=metrics,
                     started_at=_time(row.get("started_at")), ended_at=_time(row.get("ended_at")),
                     attempts=int(row.get("attempts") or 0), git_commit=commit,
                     duration_s=_seconds(row.get("duration_s")), experiment=experiment, curves=curves)


def read_runs_csv(path: str | Path) -> tuple[list[RunRecord], dict[str, Any]]:
    """Records and the sweep manifest (template, real, grid, fixed) of a runs.csv; DataError when unreadable."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read a runs.csv ({err})") from None
    if not rows or "run" not in rows[0]:
        raise DataError(f"{path}: not a runs.csv (no `run` column or no rows); write one with posereg-report")
    first = rows[0]
    manifest = {"template": first.get("template") or None, "real": first.get("real") == "true",
                "grid": _json(first.get("grid", ""), "grid", first["run"]) or {},
                "fixed": _json(first.get("fixed", ""), "fixed", first["run"]) or {}}
    return [record_from_row(r) for r in rows], manifest


def runs_csv_text(records: list[RunRecord], manifest: dict[str, Any], cells: dict[str, str],
                  curve_names: list[str]) -> str:
    """runs.csv of these records; `cells` maps a run's path to its table cell label."""
    return render_runs_csv([run_row(r, manifest, cells.get(str(r.path), ""), curve_names) for r in records])
