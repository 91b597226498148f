"""The sweep manifest of a grid folder: what one `posereg-sweep` call asked for (template, grid, fixed settings).

A call on the template's own grid writes `sweep.yaml` and its report goes to `report/`. A call that changes the
grid (`method=i1,h1`, `seed=0,1,2,3`, `budget_scale=3`, a fixed setting) is a grid of its own, a *variant*: it
writes `sweep-<variant>.yaml` and its report goes to `report-<variant>/`, with the counts and "pending" of the
cells that call asked for, so reports of different grids in one folder never overwrite each other.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from posereg.report.members import _same
from posereg.report.template import Template

MANIFEST = "sweep.yaml"
REPORT = "report"
MAX_VARIANT = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9=,._+@:\-\[\]]")


def _differs(a: list[str], b: list[str]) -> bool:
    return len(a) != len(b) or not all(_same(x, y) for x, y in zip(a, b, strict=True))


def grid_variant(template: Template | str, grid: dict[str, list[str]], fixed: dict[str, str]) -> str:
    """'' for the template's own grid; else the axes and fixed settings the call changed, as a folder-safe name."""
    if not isinstance(template, Template):
        return ""
    parts = [f"{k}={','.join(v)}" for k, v in grid.items() if _differs(v, template.grid.get(k, []))]
    own = {k.lstrip("+"): v for k, v in template.fixed.items()}
    parts += [f"{k}={v}" for k, v in fixed.items() if k.lstrip("+") not in own or not _same(own[k.lstrip("+")], v)]
    text = _UNSAFE.sub("_", ",".join(parts).replace("/", "_"))
    if len(text) > MAX_VARIANT:
        text = f"{text[: MAX_VARIANT - 11]}~{hashlib.sha1(text.encode()).hexdigest()[:10]}"
    return text


def manifest_file(variant: str) -> str:
    """`sweep.yaml` or `sweep-<variant>.yaml`."""
    return f"sweep-{variant}.yaml" if variant else MANIFEST


def report_folder(variant: str) -> str:
    """`report` or `report-<variant>`."""
    return f"{REPORT}-{variant}" if variant else REPORT


def write_manifest(grid_dir: Path, template: Template | str, grid: dict[str, list[str]], fixed: dict[str, str],
                   command: list[str]) -> Path:
    """Record what a sweep launched, so the report knows the expected cells and fixed settings."""
    grid_dir.mkdir(parents=True, exist_ok=True)
    variant = grid_variant(template, grid, fixed)
    path = grid_dir / manifest_file(variant)
    name = str(template.path or template.name) if isinstance(template, Template) else template
    real = template.is_real if isinstance(template, Template) else False
    data = {"template": name, "real": real, "variant": variant, "grid": grid, "fixed": fixed, "command": command}
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def read_manifest(grid_dir: Path, variant: str | None = None) -> dict[str, Any] | None:
    """A grid folder's manifest: the named variant, else the template's own grid (sweep.yaml), else the newest
    variant; None when the folder has none."""
    grid_dir = Path(grid_dir)
    if variant is not None:
        candidates = [grid_dir / manifest_file(variant)]
    else:
        variants = sorted(grid_dir.glob("sweep-*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
        candidates = [grid_dir / MANIFEST, *variants]
    for path in candidates:
        if path.is_file():
            with open(path) as f:
                data = yaml.safe_load(f) or None
            if isinstance(data, dict):
                data.setdefault("variant", "")
                return data
    return None
