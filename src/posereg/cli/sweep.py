"""posereg-sweep: launch a multirun template through Hydra multirun, resume it, and build its report.

    posereg-sweep integral_table1                          # SynthPose, CPU-sized budget
    posereg-sweep integral_table1 --real                   # the paper's dataset and budget
    posereg-sweep integral_table1 seed=0,1,2 hydra/launcher=joblib hydra.launcher.n_jobs=2
    posereg-sweep integral_table1 retry_failed=false       # leave failed cells failed
    posereg-sweep integral_table1 --report-only            # rebuild the report from the run dirs

Re-running the same command resumes the grid: the training task skips done cells, resumes
interrupted ones from last.ckpt and retries failed ones; a failing cell never stops the others.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from posereg.errors import ConfigError, DataError
from posereg.paths import CONF_DIR
from posereg.report.build import build_report, write_manifest
from posereg.report.template import Template, list_templates, load_template, split_values, value_str

# Passed to every cell unless the user overrides them (they are not part of the run key).
SWEEP_DEFAULTS = {"callbacks.progress_bar": "none"}


@dataclass
class SweepPlan:
    """What one `posereg-sweep` call launches."""

    template: Template
    experiment: str
    runs_dir: Path
    grid: dict[str, list[str]]
    fixed: dict[str, str]
    passthrough: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def grid_dir(self) -> Path:
        """runs/<experiment>: the sweep directory holding one run directory per cell."""
        return self.runs_dir / self.experiment

    def overrides(self) -> list[str]:
        """Hydra command-line overrides: experiment, fixed settings, grid axes (comma sweeps), the rest."""
        out = [f"experiment_name={self.experiment}", f"paths.runs_dir={self.runs_dir}"]
        out += [f"{k}={v}" for k, v in self.fixed.items()]
        for k, values in self.grid.items():
            kept = [v for v in values if v not in self.dropped.get(k, [])]
            out.append(f"{k}={','.join(kept)}")
        out += [f"{k}={v}" for k, v in self.passthrough.items()]
        return out

    def cells(self) -> list[dict[str, str]]:
        """Every grid point as {axis: value}, in Hydra's sweep order."""
        keys = list(self.grid)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.grid.values())]

    def cell_overrides(self, cell: dict[str, str]) -> list[str]:
        """The task overrides Hydra gives one cell (what its run key is made of)."""
        return [f"{k}={v}" for k, v in self.fixed.items()] + [f"{k}={v}" for k, v in cell.items()] + [
            f"{k}={v}" for k, v in self.passthrough.items()
        ]

    def run_dir(self, cell: dict[str, str]) -> Path:
        """The run directory Hydra will use for a cell (same rule as conf/hydra: override_dirname + seed)."""
        from posereg.runs import run_key

        excluded = run_key_excluded_keys()
        lines = sorted(o for o in self.cell_overrides(cell) if o.split("=", 1)[0].lstrip("+~") not in excluded)
        return self.grid_dir / run_key(",".join(lines), cell.get("seed", "0"))

    def command(self) -> list[str]:
        """The `python -m posereg.train --multirun ...` command line."""
        return [sys.executable, "-m", "posereg.train", "--multirun", *self.overrides()]

    def bare_fixed(self) -> dict[str, str]:
        """Fixed settings keyed as the run's overrides.yaml spells them without `+`."""
        return {k.lstrip("+"): v for k, v in self.fixed.items()}

    @property
    def num_cells(self) -> int:
        """Number of runs in the grid."""
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n


def run_key_excluded_keys() -> set[str]:
    """Override keys that do not define a run (launcher, logging, devices): from conf/hydra/default.yaml."""
    path = CONF_DIR / "hydra" / "default.yaml"
    if not path.is_file():
        return set()
    with open(path) as f:
        hydra_cfg = yaml.safe_load(f) or {}
    keys = (((hydra_cfg.get("job") or {}).get("config") or {}).get("override_dirname") or {}).get("exclude_keys")
    return {str(k) for k in keys or []}


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. seed=0,1,2 or data=mpii)")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _is_sweep(value: str) -> bool:
    """`a,b` sweeps; `[a,b]`, `{a:b}` and quoted strings do not."""
    return "," in value and not value.startswith(("[", "{", "'", '"')) and "(" not in value


def plan_sweep(template: Template, user_overrides: list[str], runs_dir: str | Path | None = None) -> SweepPlan:
    """Merge a template with command-line overrides: grid axes may be replaced or added, fixed keys replaced."""
    grid = {k: list(v) for k, v in template.grid.items()}
    fixed = dict(template.fixed)
    excluded = run_key_excluded_keys()
    passthrough = dict(SWEEP_DEFAULTS)
    experiment = template.name + ("_real" if template.is_real else "")
    base = Path(runs_dir) if runs_dir else Path(os.environ.get("POSEREG_RUNS_DIR", "runs"))
    for item in user_overrides:
        key, value = _split_override(item)
        bare = key.lstrip("+")
        if bare == "experiment_name":
            experiment = value
        elif bare == "paths.runs_dir":
            base = Path(value)
        elif bare in grid or (_is_sweep(value) and not bare.startswith("hydra")):
            grid[bare] = split_values(value)
            fixed.pop(bare, None)
        elif bare in excluded or bare.startswith("hydra"):
            passthrough[key] = value
        else:
            fixed[key] = value
    if "seed" not in grid:
        grid["seed"] = [fixed.pop("seed", "0")]
    grid = {k: hydra_values(k, v) for k, v in grid.items()}
    fixed = {k: hydra_values(k, [v])[0] for k, v in fixed.items()}
    return SweepPlan(template, experiment, base.resolve(), grid, fixed, passthrough)


def hydra_values(key: str, values: list[str]) -> list[str]:
    """Values exactly as Hydra's sweeper writes them into each job's overrides (`0.10` -> `0.1`, `false` -> `False`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(f"{key}={','.join(values)}")
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def composition_errors(plan: SweepPlan) -> dict[int, str]:
    """Compose every cell's config with Hydra (no training); index -> error for cells that cannot compose.

    Hydra composes a multirun's cells inside the launcher loop, so one unknown option (`method=typo`)
    would abort the whole grid before the training task can record anything.
    """
    from hydra import compose, initialize_config_dir

    errors: dict[int, str] = {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for i, cell in enumerate(plan.cells()):
            overrides = [o for o in plan.cell_overrides(cell) if not o.lstrip("+~").startswith("hydra")]
            try:
                compose(config_name="config", overrides=[*overrides, f"experiment_name={plan.experiment}"])
            except Exception as err:  # noqa: BLE001 - any composition error fails only this cell
                first = str(err).strip().split("\n\n")[0].replace("\n", " ")
                errors[i] = f"{type(err).__name__}: {first}"
    return errors


def isolate_bad_cells(plan: SweepPlan) -> list[Path]:
    """Mark cells whose config cannot compose as failed, and drop the axis values that fail everywhere."""
    errors = composition_errors(plan)
    if not errors:
        return []
    cells = plan.cells()
    failed_dirs = []
    for i, err in errors.items():
        path = plan.run_dir(cells[i])
        write_failed_status(path, plan, cells[i], err)
        failed_dirs.append(path)
    for axis, values in plan.grid.items():
        for value in values:
            members = [i for i, c in enumerate(cells) if c[axis] == value]
            if all(i in errors for i in members):
                plan.dropped.setdefault(axis, []).append(value)
    left = [i for i in errors if not any(cells[i][a] in v for a, v in plan.dropped.items())]
    if left:
        bad = "; ".join(f"{cells[i]}: {errors[i]}" for i in left[:3])
        raise ConfigError(f"these grid cells cannot be composed (a combination, not one bad value): {bad}")
    return failed_dirs


def write_failed_status(path: Path, plan: SweepPlan, cell: dict[str, str], error: str) -> None:
    """status.json + .hydra/overrides.yaml of a cell that failed before it could start."""
    from posereg.runs import RunDir

    overrides = plan.cell_overrides(cell)
    (path / ".hydra").mkdir(parents=True, exist_ok=True)
    with open(path / ".hydra" / "overrides.yaml", "w") as f:
        yaml.safe_dump(overrides, f)
    run = RunDir(path)
    run.mark_running(plan.experiment, overrides, resumed_from=None)
    run.mark_finished("failed", error=error)


def launch(plan: SweepPlan, cwd: Path | None = None) -> int:
    """Run the grid as a Hydra multirun subprocess; SIGTERM is forwarded to it, Ctrl-C waits for it."""
    for path in isolate_bad_cells(plan):
        print(f"posereg-sweep: cell cannot be composed, marked failed: {path}", file=sys.stderr)
    write_manifest(plan.grid_dir, plan.template, plan.grid, plan.bare_fixed(), plan.command())
    if not all(len(v) > len(plan.dropped.get(k, [])) for k, v in plan.grid.items()):
        return 1
    proc = subprocess.Popen(plan.command(), cwd=cwd)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    def wait_for_child(_signum: int, _frame: object) -> None:
        # Ctrl-C already reached the child (same process group): let it checkpoint, then report.
        print("posereg-sweep: interrupted; waiting for the current cell to save last.ckpt", file=sys.stderr)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, wait_for_child)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_bench_template(plan: SweepPlan) -> int:
    """A `kind: bench` template: call its function and store each result row as a done run directory."""
    from posereg.report.bench_runs import write_bench_runs

    write_manifest(plan.grid_dir, plan.template, plan.grid, plan.bare_fixed(), ["posereg-sweep", plan.template.name])
    write_bench_runs(plan.template, plan.grid_dir, plan.grid, plan.fixed)
    return 0


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
        if args.dry_run:
            print(" ".join(plan.command()))
            return 0
        rc = 0
        if not args.report_only:
            print(f"posereg-sweep: {plan.num_cells} cells -> {plan.grid_dir}", flush=True)
            rc = run_bench_template(plan) if template.kind == "bench" else launch(plan)
        if not args.no_report:
            report = build_report([plan.grid_dir], template)
            print(report.files["md"].read_text())
            print(f"report: {report.files['html']}")
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
