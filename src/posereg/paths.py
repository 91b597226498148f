"""Locations of the config tree and other repository-level folders."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(os.environ.get("POSEREG_CONF_DIR", REPO_ROOT / "conf")).resolve()
TEMPLATES_DIR = Path(os.environ.get("POSEREG_TEMPLATES_DIR", REPO_ROOT / "multirun_templates")).resolve()
BENCH_DIR = REPO_ROOT / "docs" / "benchmarks"  # the committed benchmark measurements (posereg-bench's default --out)


def real_slices_dir() -> Path:
    """The shared real-data test slices: $POSEREG_REAL_SLICES, else ../shared beside the repository."""
    env = os.environ.get("POSEREG_REAL_SLICES")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "data" / "real_slices", Path("/work/shared/data/real_slices")]
    return next((c for c in candidates if c.is_dir()), candidates[0])
