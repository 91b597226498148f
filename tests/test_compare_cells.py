"""scripts/compare_cells.py: the same cells of two grids side by side, with the seed spread beside the gap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_cells.py"


def _cell(grid: Path, key: str, auc: float, status: str = "done") -> None:
    run = grid / key
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": status}))
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("[]")
    (run / "metrics.json").write_text(json.dumps({"final": {"val/auc": auc}}))


def test_compare_cells_matches_keys_and_reports_gap_and_spread(tmp_path):
    a, b = tmp_path / "t1", tmp_path / "t2"
    for seed, (x, y) in enumerate([(10.0, 10.5), (12.0, 11.0), (14.0, 14.0)]):
        _cell(a, f"method=h1,seed={seed}", x)
        _cell(b, f"size=64,method=h1,seed={seed}", y)
    _cell(a, "method=i1,seed=0", 20.0, status="running")  # not done: not compared
    _cell(b, "size=64,method=i1,seed=0", 21.0)
    cmd = [sys.executable, str(SCRIPT), str(a), str(b), "val/auc", "--rename", "method=->size=64,method="]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "| size=64,method=h1,seed=1 | 12.0 | 11.0 | +1.0 |" in out
    assert "i1" not in out
    assert "val/auc: 3 runs, |A − B| mean 0.50, largest 1.00" in out
    # A − B = -0.5, +1.0, 0.0: mean +0.17; seed variances 4.0 (A: 10, 12, 14) and 3.583 (B): pooled sd 1.947
    assert "  size=64,method=h1: cell mean A − B +0.17 over 3 seeds = 0.09 of its seed sd 1.95" in out
