"""Compare the same grid cells run twice (e.g. on the CPU and on a GPU): one markdown row per cell both hold.

    python scripts/compare_cells.py /work/runs/integral_table7 /work/runs_gpu/integral_table7 test/mpjpe
    python scripts/compare_cells.py /work/runs/integral_table1 /work/runs_gpu/integral_table2 val/auc \
      --rename "method=->data.input_size=64,method.head.num_deconv=2,method="

Cells are matched by directory name (the run key: the grid's axes and the seed); only cells done in both are
compared. `--rename "A->B"` (text in the first grid's cell names -> its replacement) maps one grid's axis
values onto the other's (Table 1's `method=h1` is Table 2's `data.input_size=64,method.head.num_deconv=2,
method=h1`). The summary line gives the mean and largest |A - B| beside the mean seed-to-seed standard
deviation of the compared cells (in B, over seeds).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

from posereg.jsonio import DamagedFileError
from posereg.runs import RunDir


def final_metrics(run: Path) -> dict[str, float] | None:
    """A done run's final metrics (the `final` and `test` sections of metrics.json), or None."""
    try:
        if RunDir(run).read_status().get("status") != "done":
            return None
        m = RunDir(run).read_metrics()
    except (OSError, DamagedFileError):
        return None
    return {**m.get("final", {}), **m.get("test", {})}


def done_cells(grid: Path, renames: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Cell key (after renames) -> final metrics, for the done runs of one grid directory."""
    out = {}
    for run in sorted(p for p in grid.iterdir() if p.is_dir()):
        metrics = final_metrics(run)
        if metrics is not None:
            key = run.name
            for a, b in renames:
                key = key.replace(a, b)
            out[key] = metrics
    return out


def without_seed(key: str) -> str:
    return re.sub(r"(^|,)seed=\d+", "", key).strip(",")


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
        groups: dict[str, list[float]] = {}
        for k, v in b.items():
            if without_seed(k) in {without_seed(c) for c in common}:
                groups.setdefault(without_seed(k), []).append(v[m])
        stds = [statistics.stdev(v) for v in groups.values() if len(v) > 1]
        spread = f"{statistics.mean(stds):.2f}" if stds else "n/a"
        print(f"\n{m}: {len(common)} cells, |A − B| mean {statistics.mean(diffs):.2f}, largest {max(diffs):.2f}; "
              f"seed-to-seed std in B {spread} (mean over {len(stds)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
