"""A grid's plan: a multirun template plus command-line overrides, planned cell by cell and launched with Hydra.

`plan_sweep` merges a template with overrides (grid axes may be replaced or added, fixed keys replaced),
`compose_cell` gives a cell's run directory from Hydra's own composition, `launch` runs the grid as a
Hydra multirun subprocess. posereg-sweep (`posereg.cli.sweep`) is the command line around it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, open_dict

from posereg.errors import ConfigError
from posereg.paths import CONF_DIR
from posereg.report.manifest import write_manifest
from posereg.report.template import Template, split_values
from posereg.runs import RunDir, defines_run, register_resolvers, run_key
from posereg.runs.launch import SWEEP_GRID_ENV, SWEEP_PID_ENV, launch_token
from posereg.runs.lock import wait_for_grid_unlocked

# Passed to every cell unless the user overrides them (they are not part of the run key).
SWEEP_DEFAULTS = {"callbacks.progress_bar": "null"}


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
        """The run directory Hydra gives a cell (its composed `hydra.sweep.dir` / `subdir`)."""
        composed = compose_cell(self, cell)
        if isinstance(composed, str):
            raise ConfigError(f"cell {cell} cannot be composed: {composed}")
        return composed

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
        elif not defines_run(bare) or bare.startswith("hydra"):
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


def compose_cell_config(plan: SweepPlan, cell: dict[str, str]) -> DictConfig | str:
    """Compose one cell with Hydra (no training): its whole config with `hydra`, or the composition error.

    Hydra composes a multirun's cells inside the launcher loop, so one unknown option (`method=typo`)
    would abort the whole grid before the training task can record anything; composing first finds them.
    """
    from hydra import compose, initialize_config_dir

    register_resolvers()
    overrides = [o for o in plan.cell_overrides(cell) if not o.lstrip("+~").startswith("hydra")]
    overrides += [f"experiment_name={plan.experiment}", f"paths.runs_dir={plan.runs_dir}"]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
            with open_dict(cfg):  # the run directory, resolved while Hydra's context is there
                cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir = str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir)
            return cfg
    except Exception as err:  # noqa: BLE001 - any composition error fails only this cell
        first = str(err).strip().split("\n\n")[0].replace("\n", " ")
        return f"{type(err).__name__}: {first}"


def compose_cell(plan: SweepPlan, cell: dict[str, str]) -> Path | str:
    """One cell's run directory (from Hydra's own composition), or the composition error."""
    cfg = compose_cell_config(plan, cell)
    return cfg if isinstance(cfg, str) else Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)


def composition_errors(plan: SweepPlan) -> dict[int, str]:
    """Index -> error for the cells whose config cannot be composed."""
    composed = [compose_cell(plan, cell) for cell in plan.cells()]
    return {i: c for i, c in enumerate(composed) if isinstance(c, str)}


def isolate_bad_cells(plan: SweepPlan) -> list[Path]:
    """Mark cells whose config cannot compose as failed, and drop the axis values that fail everywhere."""
    errors = composition_errors(plan)
    if not errors:
        return []
    cells = plan.cells()
    failed_dirs = []
    for i, err in errors.items():
        path = plan.grid_dir / run_key(plan.cell_overrides(cells[i]), cells[i].get("seed", "0"))
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
    overrides = plan.cell_overrides(cell)
    run = RunDir(path)
    with run.record() as attempt:
        run.save_config(overrides)
        attempt.start(plan.experiment, overrides, launch=launch_token())
        attempt.end("failed", error=error)


def _start_child() -> None:
    """In the child: lead a process group of its own, and get SIGTERM when posereg-sweep dies (even by SIGKILL)."""
    # the cells may run in the launcher's workers (joblib's loky processes, the child's children), which a
    # signal to the child alone never reaches: posereg-sweep signals this whole group instead
    os.setpgid(0, 0)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


def _stop_after_cells(pgid: int, grid_dir: Path, timeout_s: float = 300.0) -> bool:
    """Wait until no cell of the grid holds its lock (each saved last.ckpt), then end what is left of group `pgid`.

    What is left are idle launcher processes (joblib's loky workers and resource tracker outlive the Hydra
    process that started them). False when cells still held locks after `timeout_s` (they are left running).
    """
    if not wait_for_grid_unlocked(grid_dir, timeout_s):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def grid_outcome(plan: SweepPlan) -> dict[str, int]:
    """How many cells of the grid are in each status (read from their status.json)."""
    counts: dict[str, int] = {}
    for cell in plan.cells():
        composed = compose_cell(plan, cell)
        state = "failed" if isinstance(composed, str) else RunDir(composed).read_status(repair=True)["status"]
        counts[state] = counts.get(state, 0) + 1
    return counts


def launch(plan: SweepPlan, cwd: Path | None = None) -> int:
    """Run the grid as a Hydra multirun subprocess; non-zero when a cell did not finish.

    SIGTERM and Ctrl-C are forwarded to the child's process group, launcher workers included, and waited for;
    the child gets SIGTERM when posereg-sweep dies (so it checkpoints instead of training on under PID 1).
    """
    for path in isolate_bad_cells(plan):
        print(f"posereg-sweep: cell cannot be composed, marked failed: {path}", file=sys.stderr)
    write_manifest(plan.grid_dir, plan.template, plan.grid, plan.bare_fixed(), plan.command())
    if not all(len(v) > len(plan.dropped.get(k, [])) for k, v in plan.grid.items()):
        return 1
    # the cells and the Hydra child watch this process and end with it (posereg.training.watchdog)
    env = {**os.environ, "POSEREG_SWEEP_CELLS": str(plan.num_cells), SWEEP_PID_ENV: str(os.getpid()),
           SWEEP_GRID_ENV: str(plan.grid_dir)}
    proc = subprocess.Popen(plan.command(), cwd=cwd, env=env, preexec_fn=_start_child)
    signalled: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            print("posereg-sweep: interrupted; waiting for the running cells to save last.ckpt", file=sys.stderr)
        signalled.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        rc = proc.wait()
        if signalled and not _stop_after_cells(proc.pid, plan.grid_dir):
            print(f"posereg-sweep: cells of {plan.grid_dir} still hold their locks after 300 s", file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    counts = grid_outcome(plan)
    done = counts.get("done", 0)
    print(f"posereg-sweep: {done}/{plan.num_cells} cells done"
          + "".join(f", {n} {state}" for state, n in sorted(counts.items()) if state != "done"), file=sys.stderr)
    if rc != 0:
        return rc
    return 0 if done == plan.num_cells else 1
