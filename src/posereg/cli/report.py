"""posereg-report: turn a grid directory (or glob of run dirs) into report.md/.csv/.tex/.html.

    posereg-report runs/integral_table1              # every run under the folder, in the template's table
    posereg-report runs/integral_table1 --per-joint  # only print PCKh per part / MPJPE per joint
    posereg-report --compare runs/a runs/b           # two grids side by side
    posereg-report --from docs/results/integral_table1/runs.csv   # rebuild a report from its per-run data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posereg.errors import ConfigError, DataError
from posereg.report.build import build_report, make_table
from posereg.report.compare import render_compare
from posereg.report.render_md import breakdown_md


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="posereg-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", help="grid dir(s), run dir(s) or glob(s), e.g. runs/integral_table1")
    p.add_argument("--from", dest="runs_csv", metavar="RUNS_CSV",
                   help="rebuild from a runs.csv (one row per run, written beside every report) instead of run dirs")
    p.add_argument("--update-docs", action="store_true",
                   help="rewrite the generated blocks of README.md and docs/results.md from docs/results/*/runs.csv")
    p.add_argument("--check-docs", action="store_true",
                   help="exit 1 when a generated block of README.md or docs/results.md is out of date")
    p.add_argument("--variant", help="a narrowed or extended grid of the folder (its sweep-<variant>.yaml): report "
                                      "that grid instead of the template's own")
    p.add_argument("--template", "-t", help="multirun template name or YAML (default: from the grid's sweep.yaml)")
    p.add_argument("--out", "-o", help="output folder (default: <grid dir>/report)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two grids or runs side by side")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--per-joint", action="store_true",
                   help="print PCKh per part and MPJPE per joint of the runs (writes no files)")
    p.add_argument("--to-tensorboard", action="store_true",
                   help="write each run's CSV history as TensorBoard events (<run>/tensorboard/from_csv)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    try:
        if args.update_docs or args.check_docs:
            from posereg.report.docs import update_docs

            stale = update_docs(check=args.check_docs)
            verb = "out of date" if args.check_docs else "rewrote"
            print("\n".join(f"{verb}: {p}" for p in stale) or "docs are up to date")
            return 1 if stale and args.check_docs else 0
        if args.compare:
            a_path, b_path = args.compare
            a, b = make_table([a_path], args.template), make_table([b_path], args.template)
            out = Path(args.out) if args.out else Path(a_path) / "compare"
            files = render_compare(a, b, Path(a_path).name, Path(b_path).name, out)
            print(Path(files["md"]).read_text())
        elif not args.paths and not args.runs_csv:
            raise ConfigError("posereg-report: give a grid dir, e.g. `posereg-report runs/integral_table1`, or "
                              "--from <runs.csv>")
        elif args.paths and args.runs_csv:
            raise ConfigError("posereg-report: give run directories or --from <runs.csv>, not both")
        elif args.to_tensorboard:
            from posereg.report.collect import expand
            from posereg.runs import find_run_dirs
            from posereg.training.loggers import csv_to_tensorboard

            for run in (d for root in expand(args.paths) for d in find_run_dirs(root)):
                print(f"wrote {csv_to_tensorboard(run)}")
            return 0
        elif args.per_joint:
            table = make_table(args.paths, args.template, runs_csv=args.runs_csv, variant=args.variant)
            lines = breakdown_md(table)
            print("\n".join(lines) if lines else "no per-part or per-joint values in these runs' metrics.json")
            return 0
        else:
            report = build_report(args.paths, args.template, args.out, plots=not args.no_plots,
                                  runs_csv=args.runs_csv, variant=args.variant)
            files = report.files
            print(report.files["md"].read_text())
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in files.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
