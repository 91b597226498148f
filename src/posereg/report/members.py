"""Which runs under a folder are cells of a grid, and why each other run is not (foreign runs)."""

from __future__ import annotations

from dataclasses import dataclass

from posereg.report.collect import RunRecord

# The value of an axis a run does not override (it ran with the config's default).
DEFAULT = "(default)"


@dataclass
class Foreign:
    """A run under the folder that is not a cell of the grid, and the reason."""

    record: RunRecord
    reason: str


def axis_value(record: RunRecord, key: str) -> str:
    """The run's value of a grid axis as its overrides spell it, DEFAULT when it did not set it."""
    return record.overrides.get(key, DEFAULT)


def _same(a: str, b: str) -> bool:
    """`0.10` and `0.1`, `True` and `true`: one value spelled by the template and by Hydra."""
    if a == b or a.lower() == b.lower():
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def merge_grids(template_grid: dict[str, list[str]], launched: dict[str, list[str]]) -> dict[str, list[str]]:
    """The template's grid plus whatever a sweep call added (axes or values), in Hydra's spelling."""
    out: dict[str, list[str]] = {}
    for key in [*template_grid, *(k for k in launched if k not in template_grid)]:
        spelled = launched.get(key, [])
        values = [next((s for s in spelled if _same(v, s)), v) for v in template_grid.get(key, [])]
        out[key] = values + [s for s in spelled if not any(_same(s, v) for v in values)]
    return out


def _outside(record: RunRecord, grid: dict[str, list[str]], fixed: dict[str, str] | None,
             experiment: str | None) -> str | None:
    if experiment and record.experiment and record.experiment != experiment:
        return f"experiment {record.experiment}, not {experiment}"
    off = [f"{k}={axis_value(record, k)}" for k, values in grid.items() if axis_value(record, k) not in values]
    if off:
        return "outside the grid: " + ", ".join(off)
    other = [f"{k}={record.overrides.get(k, DEFAULT)} (grid: {v})" for k, v in (fixed or {}).items()
             if record.overrides.get(k) != v]
    return "other fixed settings: " + ", ".join(other) if other else None


def _rank(record: RunRecord) -> tuple[bool, float]:
    return record.status == "done", record.ended_at.timestamp() if record.ended_at else 0.0


def split_members(records: list[RunRecord], grid: dict[str, list[str]], fixed: dict[str, str] | None = None,
                  experiment: str | None = None) -> tuple[list[RunRecord], list[Foreign]]:
    """Grid members (one per grid point: the done or most recently finished launch) and foreign runs."""
    foreign: list[Foreign] = []
    best: dict[tuple[str, ...], RunRecord] = {}
    for r in records:
        why = _outside(r, grid, fixed, experiment)
        if why:
            foreign.append(Foreign(r, why))
            continue
        point = tuple(axis_value(r, k) for k in sorted(grid))
        cur = best.get(point)
        if cur is None or _rank(r) > _rank(cur):
            best[point], r = r, cur  # type: ignore[assignment]
        if r is not None:
            foreign.append(Foreign(r, "an older launch of a cell that has a newer run"))
    return list(best.values()), foreign
