"""posereg-sweep: launch a multirun template through Hydra multirun, resume it, and build its report.

    posereg-sweep integral_table1                          # SynthPose, CPU-sized budget
    posereg-sweep integral_table1 --real                   # the paper's dataset and budget
    posereg-sweep integral_table1 seed=0,1,2 hydra/launcher=joblib hydra.launcher.n_jobs=2
    posereg-sweep integral_table1 retry_failed=false       # leave failed cells failed
    posereg-sweep integral_table1 --report-only            # rebuild the report from the run dirs
    posereg-sweep integral_table1 --real --cost            # what the grid costs: steps, compute, disk, time

A mistyped group, option or key stops the command with one line naming the closest valid names (exit 2).
Re-running the same command resumes the grid: the training task skips done cells, resumes
interrupted ones from last.ckpt and retries failed ones; a failing cell never stops the others.
"""

from __future__ import annotations

import argparse
import sys

from omegaconf import OmegaConf

from posereg.errors import ConfigError, DataError
from posereg.grid.plan import SweepPlan, compose_cell_config, launch, plan_sweep
from posereg.overrides import check_overrides
from posereg.report.manifest import grid_variant, write_manifest
from posereg.report.template import list_templates, load_template, value_str


def run_bench_template(plan: SweepPlan) -> int:
    """A `kind: bench` template: call its function and store each result row as a done run directory."""
    from posereg.grid.bench_cells import write_bench_runs

    write_manifest(plan.grid_dir, plan.template, plan.grid, plan.bare_fixed(), ["posereg-sweep", plan.template.name])
    write_bench_runs(plan.template, plan.grid_dir, plan.grid, plan.fixed)
    return 0


def fetch_pretrained_weights(plan: SweepPlan) -> None:
    """The pretrained weights the grid's cells start from, each fetched once before any cell runs: offline, the
    grid stops with one line instead of failing every cell (cells that cannot compose are left to `launch`)."""
    # seeds never change where the weights come from: one cell per combination of the other axes is composed
    cells = {tuple((k, v) for k, v in cell.items() if k != "seed"): cell for cell in plan.cells()}
    composed = [compose_cell_config(plan, cell) for cell in cells.values()]
    wanted = [cfg for cfg in composed if not isinstance(cfg, str) and OmegaConf.select(cfg, "backbone.pretrained")]
    if wanted:  # torch, timm and the methods take seconds to import: only when some cell starts pretrained
        from posereg.methods.initial_weights import fetch_pretrained

        fetch_pretrained(*wanted)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="posereg-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("template", nargs="?", help=f"template name or YAML; shipped: {', '.join(list_templates())}")
    p.add_argument("overrides", nargs="*", help="Hydra overrides (key=value; key=a,b adds or replaces a grid axis)")
    p.add_argument("--real", action="store_true", help="apply the template's `real:` settings (paper data/budget)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the run dirs")
    p.add_argument("--no-report", action="store_true", help="launch without building the report")
    p.add_argument("--dry-run", action="store_true", help="print the Hydra command and exit")
    p.add_argument("--cost", action="store_true",
                   help="print each cell's steps, images, GMACs, training compute, checkpoint disk and (once a cell "
                        "has finished) the time still to run, then exit; nothing is trained")
    p.add_argument("--list", action="store_true", help="list the shipped templates")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    if args.list or not args.template:
        for name in list_templates():
            print(f"{name:22s} {load_template(name).title}")
        return 0
    try:
        template = load_template(args.template, real=args.real)
        plan = plan_sweep(template, [value_str(o) for o in args.overrides])
        if template.kind != "bench":  # a bench template's axes are its function's arguments, not config keys
            check_overrides(plan.overrides())  # a mistyped group, option or key: one line, before any cell
        if args.dry_run:
            print(" ".join(plan.command()))
            return 0
        if args.cost:
            from posereg.grid.cost import cost_table, estimate

            print(cost_table(plan, estimate(plan)))
            return 0
        rc = 0
        if not args.report_only:
            if template.kind != "bench":
                fetch_pretrained_weights(plan)
            print(f"posereg-sweep: {plan.num_cells} cells -> {plan.grid_dir}", flush=True)
            rc = run_bench_template(plan) if template.kind == "bench" else launch(plan)
        if not args.no_report:
            from posereg.report.build import build_report  # scipy and matplotlib: only when a report is built

            variant = grid_variant(template, plan.grid, plan.bare_fixed())
            report = build_report([plan.grid_dir], template, variant=variant)
            print(report.files["md"].read_text())
            print(f"report: {report.files['html']}")
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
