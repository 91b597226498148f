"""Wall time of a small grid run sequentially (Hydra's basic launcher) vs joblib with 2 workers."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from posereg.cli.sweep import launch, plan_sweep
from posereg.report.collect import collect
from posereg.report.template import load_template

# Tiny SynthPose cells: the bench measures the launcher, so each cell is a few seconds of training.
TINY_CELL = {
    "debug": "tiny",
    "backbone.name": "resnet10t",
    "method.head.width": 32,
    "data.input_size": 32,
    "data.batch_size": 2,
    "data.eval_batch_size": 4,
    "trainer.max_epochs": 1,
    "trainer.limit_val_batches": 1,
}


def _template(path: Path, steps: int) -> Path:
    path.write_text(yaml.safe_dump({
        "name": path.stem, "title": "launcher bench", "grid": {"method": "i1,r1", "seed": "0,1"},
        "fixed": {**TINY_CELL, "trainer.limit_train_batches": steps},
        "table": {"rows": {"axis": "method"}, "metrics": ["val/pckh@0.5"]},
    }))
    return path


def time_grid(template: Path, runs: Path, extra: list[str]) -> tuple[float, int]:
    """Seconds to run the grid from scratch, and how many cells finished."""
    plan = plan_sweep(load_template(template), [f"paths.runs_dir={runs}", "test_after_fit=false", *extra])
    start = time.perf_counter()
    launch(plan)
    seconds = time.perf_counter() - start
    return seconds, sum(r.status == "done" for r in collect([plan.grid_dir]))


def run_sweep_bench(quick: bool = False, steps: int = 30) -> dict[str, Any]:
    """4-cell grid: sequential vs `hydra/launcher=joblib hydra.launcher.n_jobs=2` (speedup = seq / joblib)."""
    steps = 2 if quick else steps
    previous = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})  # one core per cell
    try:
        with tempfile.TemporaryDirectory() as tmp:
            template = _template(Path(tmp) / "bench_grid.yaml", steps)
            seq_s, seq_done = time_grid(template, Path(tmp) / "seq", [])
            par_s, par_done = time_grid(template, Path(tmp) / "par", ["hydra/launcher=joblib",
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
        "done": {"sequential": seq_done, "joblib2": par_done},
    }
    print(f"sweep bench: 4 cells, sequential {seq_s:.1f} s, joblib x2 {par_s:.1f} s -> speedup {result['speedup']}x")
    return result
