"""Wall time of a small grid run sequentially (Hydra's basic launcher) vs joblib with 2 workers."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from posereg.grid.plan import launch, plan_sweep
from posereg.report.collect import collect
from posereg.report.template import load_template

# Small SynthPose cells (ResNet-18, 64 px): long enough that training, not process start-up, dominates.
CELL = {
    "debug": "tiny",
    "data.input_size": 64,
    "data.batch_size": 8,
    "data.eval_batch_size": 16,
    "trainer.max_epochs": 1,
    "trainer.limit_val_batches": 2,
}


def _template(path: Path, steps: int) -> Path:
    path.write_text(yaml.safe_dump({
        "name": path.stem, "title": "launcher bench", "grid": {"method": "i1,r1", "seed": "0,1"},
        "fixed": {**CELL, "trainer.limit_train_batches": steps},
        "table": {"rows": {"axis": "method"}, "metrics": ["val/pckh@0.5"]},
    }))
    return path


def time_grid(template: Path, runs: Path, extra: list[str]) -> tuple[float, int, float]:
    """Seconds to run the grid from scratch, cells finished, and the mean cell duration (status.json)."""
    plan = plan_sweep(load_template(template), [f"paths.runs_dir={runs}", "test_after_fit=false", *extra])
    start = time.perf_counter()
    launch(plan)
    seconds = time.perf_counter() - start
    done = [r for r in collect([plan.grid_dir]) if r.status == "done" and r.started_at and r.ended_at]
    cell = sum((r.ended_at - r.started_at).total_seconds() for r in done) / max(len(done), 1)
    return seconds, len(done), cell


def run_sweep_bench(quick: bool = False, steps: int = 30) -> dict[str, Any]:
    """4-cell grid: sequential vs `hydra/launcher=joblib hydra.launcher.n_jobs=2` (speedup = seq / joblib).

    Each joblib worker imports torch and Lightning once (~10 s on a slow CPU), so grids of very short
    cells (`quick`) can be slower in parallel; the speedup shows once cells train for longer.
    """
    steps = 3 if quick else steps
    previous = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})  # one core per cell
    try:
        with tempfile.TemporaryDirectory() as tmp:
            template = _template(Path(tmp) / "bench_grid.yaml", steps)
            seq_s, seq_done, seq_cell = time_grid(template, Path(tmp) / "seq", [])
            par_s, par_done, par_cell = time_grid(template, Path(tmp) / "par", ["hydra/launcher=joblib",
                                                                                "hydra.launcher.n_jobs=2"])
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    result = {
        "cells": 4,
        "train_steps_per_cell": steps,
        "cpu_count": os.cpu_count(),
        "sequential_s": round(seq_s, 1),
        "joblib2_s": round(par_s, 1),
        "speedup": round(seq_s / par_s, 2) if par_s else None,
        # > 1 means the two concurrent cells slowed each other down (cores shared with other work)
        "cell_slowdown_in_parallel": round(par_cell / seq_cell, 2) if seq_cell else None,
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "done": {"sequential": seq_done, "joblib2": par_done},
    }
    print(f"sweep bench: 4 cells, sequential {seq_s:.1f} s, joblib x2 {par_s:.1f} s -> speedup {result['speedup']}x "
          f"(a cell takes {result['cell_slowdown_in_parallel']}x longer when two run at once)")
    return result
