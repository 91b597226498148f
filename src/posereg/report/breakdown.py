"""Per-part PCKh and per-joint MPJPE tables from metrics.json extras, one column per cell of runs."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from posereg.errors import ConfigError
from posereg.report.collect import RunRecord
from posereg.report.table import Table
from posereg.skeletons import PART_NAMES, get_joint_set

PART = re.compile(r"^(pckh(?:_proxy)?@[0-9.]+)/([^@/]+)$")
JOINT = re.compile(r"^mpjpe_joint/([^@/]+)$")


@dataclass
class Breakdown:
    """One table: a value per part (or joint) and per cell, averaged over the cell's done runs."""

    title: str
    columns: list[str]
    rows: list[tuple[str, list[float | None]]]

    def text_rows(self, decimals: int = 1) -> list[list[str]]:
        """Rows as strings (`–` where a cell has no value)."""
        return [[name] + ["–" if v is None else f"{v:.{decimals}f}" for v in values] for name, values in self.rows]


def _groups(table: Table) -> list[tuple[str, list[RunRecord]]]:
    """Distinct sets of runs in table order, named by the cell (output dimensions share their runs)."""
    rows_out = table.template.rows.is_outputs
    cols_out = table.template.columns is not None and table.template.columns.is_outputs
    out: dict[tuple[str, ...], tuple[str, list[RunRecord]]] = {}
    for rk in table.row_keys:
        for ck in table.col_keys:
            runs = [r for r in table.records.get((rk, ck), []) if r.status == "done"]
            key = tuple(sorted(str(r.path) for r in runs))
            if not runs or key in out:
                continue
            parts = [] if rows_out else [table.row_label(rk)]
            parts += [] if cols_out else [table.col_label(ck)]
            out[key] = (" | ".join(p for p in parts if p) or "all runs", runs)
    return list(out.values())


def _values(run: RunRecord, split: str) -> dict[str, float]:
    """Scalars of a split: metrics.json extras.<split>, plus `<split>/...` entries of final or test."""
    out = {}
    section = "test" if split == "test" else "final"
    for k, v in (run.metrics.get(section) or {}).items():
        if k.startswith(f"{split}/"):
            out[k.removeprefix(f"{split}/")] = v
    out.update((run.metrics.get("extras") or {}).get(split) or {})
    return {k: float(v) for k, v in out.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}


def _joint_names(runs: list[RunRecord]) -> tuple[str, ...]:
    for r in runs:
        name = r.setup.get("joint_set")
        if name:
            try:
                return get_joint_set(str(name)).names
            except ConfigError:
                continue
    return ()


def _table(title: str, groups: list[tuple[str, list[RunRecord]]], split: str, pattern: re.Pattern,
           rename: dict[str, str], order: tuple[str, ...]) -> Breakdown | None:
    per_group: list[dict[str, list[float]]] = []
    names: list[str] = []
    for _, runs in groups:
        acc: dict[str, list[float]] = {}
        for r in runs:
            for key, value in _values(r, split).items():
                m = pattern.match(key)
                if m:
                    name = rename.get(m.group(1), m.group(1))
                    acc.setdefault(name, []).append(value)
                    names += [] if name in names else [name]
        per_group.append(acc)
    if not names:
        return None
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    rows = [(n, [statistics.fmean(acc[n]) if acc.get(n) else None for acc in per_group]) for n in names]
    return Breakdown(title, [label for label, _ in groups], rows)


def breakdowns(table: Table) -> list[Breakdown]:
    """PCKh per part (per threshold) and MPJPE per joint, for the split the table reports (val or test)."""
    groups = _groups(table)
    if not groups:
        return []
    first = "test" if table.metrics and table.metrics[0].section == "test" else "val"
    joints = _joint_names([r for _, runs in groups for r in runs])
    indexed = {f"j{i}": n for i, n in enumerate(joints)}
    out = []
    for split in (first, "val" if first == "test" else "test"):
        keys = {k for _, runs in groups for r in runs for k in _values(r, split)}
        prefixes = {m.group(1) for k in keys if (m := PART.match(k))}
        for prefix in sorted(prefixes, key=lambda p: (-float(p.rsplit("@", 1)[1]), p)):  # @0.5 before @0.1
            part = re.compile(rf"^{re.escape(prefix)}/([^@/]+)$")
            name = prefix.replace("pckh", "PCKh", 1)
            # in the skeleton's part order, however the runs stored them (runs.csv sorts its columns)
            found = _table(f"{name} per part ({split}, %)", groups, split, part, {}, PART_NAMES)
            out += [found] if found else []
        found = _table(f"MPJPE per joint ({split}, mm)", groups, split, JOINT, indexed, joints)
        out += [found] if found else []
        if out:
            return out
    return out
