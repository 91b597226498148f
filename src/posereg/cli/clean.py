"""posereg-clean: free the disk finished runs hold in checkpoints (a dry run unless --apply).

    posereg-clean runs/                       # what would be freed, per run
    posereg-clean runs/ --apply               # rewrite done runs' checkpoints with the weights only
    posereg-clean runs/ --apply --drop-last   # and remove last.ckpt where best.ckpt exists

Only runs whose status is `done` are touched: an interrupted or running run needs its full last.ckpt to
resume. Weights-only checkpoints still evaluate (posereg-eval), predict and export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posereg.errors import ConfigError, DataError
from posereg.jsonio import DamagedFileError
from posereg.report.collect import expand
from posereg.runs import RunDir, find_run_dirs
from posereg.runs.checkpoints import weights_only_copy
from posereg.weights import load_checkpoint


def _is_weights_only(path: Path) -> bool:
    ckpt = load_checkpoint(path)
    return isinstance(ckpt, dict) and bool(ckpt.get("posereg_weights_only"))


def plan(paths: list[str], drop_last: bool) -> list[tuple[RunDir, Path, str, int]]:
    """(run, checkpoint, action, its size in bytes) for every checkpoint of a done run that would change; a run
    whose status.json or checkpoint cannot be read is left alone, with a line saying so."""
    rows = []
    for root in expand(paths):
        for d in find_run_dirs(root):
            run = RunDir(d)
            try:
                if run.read_status(repair=False).get("status") != "done":
                    continue
            except DamagedFileError as err:
                print(f"left alone: {err}")
                continue
            for ckpt in (run.last_ckpt, run.best_ckpt):
                if not ckpt.exists():
                    continue
                size = ckpt.stat().st_size
                if drop_last and ckpt == run.last_ckpt and run.best_ckpt.exists():
                    rows.append((run, ckpt, "remove", size))
                    continue
                try:
                    if not _is_weights_only(ckpt):
                        rows.append((run, ckpt, "weights only", size))
                except ConfigError as err:  # damaged, or needs trust: not posereg-clean's to rewrite
                    print(f"left alone: {err}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Console entry point (posereg-clean)."""
    p = argparse.ArgumentParser(prog="posereg-clean", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="runs folder(s), grid dir(s) or run dir(s)")
    p.add_argument("--apply", action="store_true", help="do it (default: only show what would be done)")
    p.add_argument("--drop-last", action="store_true", help="remove last.ckpt of done runs that have best.ckpt")
    args = p.parse_args(argv)
    try:
        rows = plan(args.paths, args.drop_last)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    freed = 0
    for _run, ckpt, action, size in rows:
        if args.apply:
            if action == "remove":
                ckpt.unlink()
                freed += size
            else:
                freed += weights_only_copy(ckpt)
        print(f"{action:13s} {size / 1e6:8.1f} MB  {ckpt}")
    total = sum(r[3] for r in rows)
    verb = f"freed {freed / 1e6:.0f} MB" if args.apply else f"{len(rows)} checkpoints ({total / 1e6:.0f} MB) would " \
        "change: re-run with --apply"
    print(f"posereg-clean: {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
