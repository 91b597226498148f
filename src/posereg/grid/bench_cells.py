"""The cells of `kind: bench` templates: call a benchmark function and store each row as a done run directory.

posereg-sweep runs these; the report then reads the directories like any training grid (it never runs
anything itself), so a bench table (SSP-Net Table 4) gets the same layout, paper column and renderers.
"""

from __future__ import annotations

import importlib
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from posereg.devices import cpu_model
from posereg.errors import ConfigError
from posereg.report.template import Template
from posereg.runs import RunDir, RunMetrics
from posereg.runs.launch import launch_token


def bench_function(target: str):
    """Import `package.module.function`."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"bench.target={target!r} cannot be imported: {err}") from None


def write_bench_runs(
    template: Template, grid_dir: Path, grid: dict[str, list[str]], fixed: dict[str, str]
) -> list[Path]:
    """Run the template's benchmark once per seed and write `<row_key>=<v>,seed=<s>/` run dirs (done ones kept)."""
    spec = template.bench
    if "target" not in spec or "row_key" not in spec:
        raise ConfigError(f"template {template.name}: kind=bench needs bench.target and bench.row_key")
    row_key = str(spec["row_key"])
    values = grid.get(row_key, [])
    kwargs: dict[str, Any] = dict(spec.get("kwargs") or {})
    for axis, kwarg in (spec.get("axis_kwargs") or {}).items():
        kwargs[str(kwarg)] = tuple(int(v) if v.lstrip("-").isdigit() else v for v in grid.get(axis, []))
    fn = bench_function(str(spec["target"]))
    # the functions compute on the CPU (the ops and decodings of a table, not a trained network): say which one
    setup = {"device": "CPU", "device_model": cpu_model(), "torch_threads": torch.get_num_threads()}
    paths = []
    for seed in grid.get("seed", ["0"]):
        cells = {v: RunDir(grid_dir / f"{row_key}={v},seed={seed}") for v in values}
        if cells and all(c.read_status().get("status") == "done" for c in cells.values()):
            paths += [c.path for c in cells.values()]
            continue
        overrides = {v: [*(f"{k}={x}" for k, x in fixed.items()), f"{row_key}={v}", f"seed={seed}"] for v in values}
        with ExitStack() as held:  # one call measures every cell of the seed: hold all their locks
            attempts = {v: held.enter_context(run.record()) for v, run in cells.items()}
            for v, attempt in attempts.items():
                attempt.start(template.name, overrides[v], launch=launch_token())
            rows = fn(seed=int(seed), **kwargs)  # an error is recorded in every cell (RunDir.record)
            by_value = {str(r.get(row_key)): r for r in rows}
            for v, attempt in attempts.items():
                attempt.run.save_config(overrides[v])
                row = by_value.get(v)
                if row is None:
                    attempt.end("failed", error=f"{spec['target']} returned no row with {row_key}={v}")
                    continue
                scalars = {k: float(x) for k, x in row.items()
                           if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))}
                attempt.done(RunMetrics(final=scalars, best=scalars, setup=setup))
                paths.append(attempt.run.path)
    return paths
