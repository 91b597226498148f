"""Compare the same grid cells run twice (e.g. on the CPU and on a GPU): one markdown row per cell both hold.

    python scripts/compare_cells.py /work/runs/integral_table7 /work/runs_gpu/integral_table7 test/mpjpe
    python scripts/compare_cells.py /work/runs/integral_table1 /work/runs_gpu/integral_table2 val/auc \
      --rename "method=->data.input_size=64,method.head.num_deconv=2,method="

Cells are matched by directory name (the run key: the grid's axes and the seed); only cells done in both are
compared. `--rename "A->B"` (text in the first grid's cell names -> its replacement) maps one grid's axis
values onto the other's (Table 1's `method=h1` is Table 2's `data.input_size=64,method.head.num_deconv=2,
method=h1`). Per cell (the key without its seed) the summary gives the shift of the cell's mean, mean(A - B)
over the seeds both ran, in units of that cell's own seed-to-seed standard deviation (pooled over A and B):
a low-variance method and a high-variance one are not averaged into one figure.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from pathlib import Path

from posereg.report.collect import collect


def done_cells(grid: Path, renames: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Cell key (after renames) -> final metrics (`final` and `test` sections), for the done runs of one grid."""
    out = {}
    for record in collect([grid]):
        if record.status != "done":
            continue
        key = record.path.name
        for a, b in renames:
            key = key.replace(a, b)
        out[key] = {**(record.metrics.get("final") or {}), **(record.metrics.get("test") or {})}
    return out


def without_seed(key: str) -> str:
    return re.sub(r"(^|,)seed=\d+", "", key).strip(",")


def _by_cell(keys: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in keys:
        out.setdefault(without_seed(k), []).append(k)
    return out


def _pooled_sd(a: list[float], b: list[float]) -> float | None:
    """sqrt of the mean of the two grids' seed variances (None with fewer than two seeds)."""
    if len(a) < 2:
        return None
    return math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="one grid's directory (<runs>/<template>)")
    p.add_argument("b", type=Path, help="the other grid's directory")
    p.add_argument("metrics", nargs="+", help="metric names, e.g. val/auc test/mpjpe")
    p.add_argument("--rename", action="append", default=[], metavar="A->B",
                   help="replace A by B in the first grid's cell names (repeatable)")
    args = p.parse_args(argv)
    if any("->" not in r for r in args.rename):
        p.error("--rename takes OLD->NEW")
    renames = [tuple(r.split("->", 1)) for r in args.rename]
    a, b = done_cells(args.a, renames), done_cells(args.b, [])
    common = sorted(set(a) & set(b))
    if not common:
        print(f"error: no cell is done in both {args.a} and {args.b}", file=sys.stderr)
        return 2
    print("| cell | " + " | ".join(f"{m} A | {m} B | Δ" for m in args.metrics) + " |")
    print("|---|" + "---|---|---|" * len(args.metrics))
    for key in common:
        cells = [f"{a[key][m]:.1f} | {b[key][m]:.1f} | {a[key][m] - b[key][m]:+.1f}" for m in args.metrics]
        print(f"| {key} | " + " | ".join(cells) + " |")
    for m in args.metrics:
        diffs = [abs(a[k][m] - b[k][m]) for k in common]
        print(f"\n{m}: {len(common)} runs, |A − B| mean {statistics.mean(diffs):.2f}, largest {max(diffs):.2f}")
        for cell, keys in sorted(_by_cell(common).items()):
            shift = statistics.fmean(a[k][m] - b[k][m] for k in keys)
            sd = _pooled_sd([a[k][m] for k in keys], [b[k][m] for k in keys])
            units = f"{abs(shift) / sd:.2f} of its seed sd {sd:.2f}" if sd else "seed sd n/a (fewer than 2 seeds)"
            print(f"  {cell}: cell mean A − B {shift:+.2f} over {len(keys)} seeds = {units}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
