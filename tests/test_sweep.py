"""posereg-sweep end to end on tiny SynthPose: completion, kill + resume, failing cells, joblib parallelism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from posereg.grid.plan import isolate_bad_cells, plan_sweep
from posereg.report.build import make_table
from posereg.report.template import load_template

# Smallest settings that still train, validate and checkpoint: a few seconds per cell on a busy CPU.
TINY = {
    "debug": "tiny",
    "backbone.name": "resnet10t",
    "method.head.width": 32,
    "data.input_size": 32,
    "data.batch_size": 2,
    "data.eval_batch_size": 4,
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 2,
    "trainer.limit_val_batches": 1,
}
RUNTIME = ["test_after_fit=false", "logger=csv"]


def write_template(path: Path, grid: dict, columns: str | None = None) -> Path:
    """A tiny template: rows by method (columns optional), PCKh@0.5."""
    table = {"rows": {"axis": "method"}, "metrics": [{"name": "val/pckh@0.5", "label": "PCKh@0.5"}]}
    if columns:
        table["columns"] = {"axis": columns}
    path.write_text(yaml.safe_dump({"name": path.stem, "title": "tiny grid", "grid": grid, "fixed": TINY,
                                    "table": table}))
    return path


def sweep_cmd(template: Path, runs: Path, *extra: str) -> list[str]:
    """`posereg-sweep <template> paths.runs_dir=<runs> ...` as a subprocess command."""
    return [sys.executable, "-m", "posereg.cli.sweep", str(template), f"paths.runs_dir={runs}", *RUNTIME, *extra]


def env() -> dict[str, str]:
    """One thread per process: cells share two cores with everything else."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def statuses(grid_dir: Path) -> dict[str, dict]:
    """Run key -> status.json of every run dir in the grid."""
    out = {}
    for f in grid_dir.glob("*/status.json"):
        try:
            out[f.parent.name] = json.loads(f.read_text())
        except json.JSONDecodeError:  # being rewritten right now
            continue
    return out


def when(text: str) -> datetime:
    """Parse an ISO timestamp from status.json."""
    return datetime.fromisoformat(text)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_grid_killed_midway_resumes_only_missing_cells(tmp_path: Path) -> None:
    template = write_template(tmp_path / "tiny_resume.yaml", {"method": "i1,r1", "seed": "0,1"})
    runs = tmp_path / "runs"
    grid_dir = runs / "tiny_resume"
    proc = subprocess.Popen(sweep_cmd(template, runs), cwd=tmp_path, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if sum(s.get("status") == "done" for s in statuses(grid_dir).values()) >= 2:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # posereg-sweep's group; its Hydra child (a group of its own) gets SIGTERM
        proc.wait()
    locks_gone = time.time() + 120  # the Hydra child saves the running cell's last.ckpt, then exits
    while time.time() < locks_gone and list(grid_dir.glob("*/.lock")):
        time.sleep(0.2)
    before = statuses(grid_dir)
    done_before = {k for k, s in before.items() if s["status"] == "done"}
    assert len(done_before) == 2, before
    mtimes = {k: (grid_dir / k / "metrics.json").stat().st_mtime_ns for k in done_before}

    rerun_start = datetime.now(timezone.utc).replace(microsecond=0)
    result = subprocess.run(sweep_cmd(template, runs), cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    after = statuses(grid_dir)
    assert len(after) == 4 and all(s["status"] == "done" for s in after.values()), after
    # a cell trained again has a new status record (attempt, timestamps); timestamps alone have 1 s
    # resolution and a tiny cell can start, finish and be killed after within the same second
    trained_again = {k for k, s in after.items() if s != before.get(k)}
    assert trained_again == set(after) - done_before
    assert all(when(after[k]["started_at"]) >= rerun_start for k in trained_again)
    for k in done_before:  # untouched: same attempt, same timestamps, same metrics file
        assert after[k] == before[k]
        assert (grid_dir / k / "metrics.json").stat().st_mtime_ns == mtimes[k]
    for k in trained_again - set(before):
        assert after[k]["attempts"] == 1
    assert "4/4 runs done" in (grid_dir / "report" / "report.md").read_text()
    # the sweep predicts Hydra's run directories (used to record cells that cannot even be composed)
    plan = plan_sweep(load_template(template), [f"paths.runs_dir={runs}", *RUNTIME])
    assert {plan.run_dir(c).name for c in plan.cells()} == set(after)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_failing_cells_do_not_stop_the_grid_and_joblib_runs_cells_in_two_workers(tmp_path: Path) -> None:
    # backbone.name first: Hydra enumerates (good, i1), (good, r1), ... so the two workers start the good cells
    template = write_template(tmp_path / "tiny_fail.yaml",
                              {"backbone.name": "resnet10t,no_such_net", "method": "i1,r1", "seed": "0"},
                              columns="backbone.name")
    runs = tmp_path / "runs"
    result = subprocess.run(
        sweep_cmd(template, runs, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
        cwd=tmp_path, env=env(), capture_output=True, text=True,
    )
    # failed cells make the sweep's exit code non-zero (a scheduler must not read it as success)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "2/4 cells done, 2 failed" in result.stderr
    st = statuses(runs / "tiny_fail")
    good = [s for s in st.values() if "backbone.name=resnet10t" in s["overrides"]]
    bad = [s for s in st.values() if "backbone.name=no_such_net" in s["overrides"]]
    assert [s["status"] for s in good] == ["done", "done"]
    assert [s["status"] for s in bad] == ["failed", "failed"]
    assert all("no_such_net" in s["error"] for s in bad)
    # the cells ran in joblib's worker processes, not all in one (their overlap in time is not asserted: on a
    # loaded machine one worker may start later than a tiny cell takes)
    assert len({s["pid"] for s in st.values()}) >= 2
    md = (runs / "tiny_fail" / "report" / "report.md").read_text()
    assert "PARTIAL: 2/4 runs done (2 failed)" in md
    assert md.count("| failed |") == 2 and "## Failed runs" in md
    table = make_table([runs / "tiny_fail"])
    assert table.cells[("i1", "resnet10t", "val/pckh@0.5")].n == 1


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigterm_to_a_joblib_sweep_interrupts_the_cells_in_its_workers(tmp_path: Path) -> None:
    # the cells run in joblib's loky processes, children of the Hydra child: a SIGTERM forwarded to the child
    # alone left them training, orphaned, holding their locks
    template = write_template(tmp_path / "tiny_term.yaml", {"method": "i1,r1", "seed": "0"})
    runs = tmp_path / "runs"
    grid_dir = runs / "tiny_term"
    proc = subprocess.Popen(sweep_cmd(template, runs, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                      "trainer.max_epochs=1000"),
                            cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            st = statuses(grid_dir)
            if len(st) == 2 and all((grid_dir / k / "checkpoints" / "last.ckpt").exists() for k in st):
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)  # posereg-sweep only, as `kill <pid>` does
        err = proc.communicate(timeout=300)[1]
    assert proc.returncode != 0
    st = statuses(grid_dir)
    assert [s["status"] for s in st.values()] == ["interrupted", "interrupted"], err[-3000:]
    assert all(s["exit_code"] == 143 for s in st.values())
    assert not list(grid_dir.glob("*/.lock"))  # no worker trains on: posereg-sweep waited for them
    assert "2 interrupted" in err


def test_cells_that_cannot_compose_are_marked_failed(tmp_path: Path) -> None:
    template = write_template(tmp_path / "tiny_typo.yaml", {"method": "i1,typo", "seed": "0"})
    plan = plan_sweep(load_template(template), [f"paths.runs_dir={tmp_path / 'runs'}"])
    failed = isolate_bad_cells(plan)
    assert plan.dropped == {"method": ["typo"]}
    assert "method=i1" in plan.overrides()
    (path,) = failed
    status = json.loads((path / "status.json").read_text())
    assert status["status"] == "failed" and "method/typo" in status["error"]
    assert "method=typo" in yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text())
    table = make_table([tmp_path / "runs" / "tiny_typo"], load_template(template))
    assert table.counts["failed"] == 1 and table.cells[("typo", "", "val/pckh@0.5")].statuses["failed"] == 1


def _flat(cfg) -> dict:
    from omegaconf import OmegaConf

    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


@pytest.mark.parametrize("name", ["integral_table1", "integral_table2", "integral_table4", "integral_table7",
                                  "integral_table8", "integral_table9", "luvizon_ablation", "sspnet_table5"])
def test_template_cells_compose_to_exactly_their_preset_plus_axes(name, tmp_path):
    """A template's cpu / --real cells type no budget of their own: each equals `experiment=<preset>` + its axes."""
    from conftest import compose_config

    for real in (False, True):
        template = load_template(name, real=real)
        plan = plan_sweep(template, [f"paths.runs_dir={tmp_path}"])
        preset = template.cpu["experiment"] if not real else template.real["experiment"]
        cells = {tuple((k, v) for k, v in c.items() if k != "seed"): c for c in plan.cells()}
        for cell in cells.values():
            ours = compose_config([o for o in plan.cell_overrides(cell) if not o.startswith("callbacks.progress_bar")])
            axes = [f"{k}={v}" for k, v in cell.items()] + [f"{k}={v}" for k, v in template.fixed.items()
                                                            if k != "experiment"]
            reference = compose_config([f"experiment={preset}", *axes])
            assert _flat(ours) == _flat(reference), (name, real, cell)


def test_cost_estimate_counts_steps_compute_disk_and_times_pending_cells_from_finished_ones(tmp_path: Path) -> None:
    from posereg.cli.sweep import main as sweep_main
    from posereg.data.datamodule import data_info
    from posereg.grid.cost import cost_table, estimate, summary
    from posereg.grid.plan import compose_cell_config
    from posereg.methods import build_net
    from posereg.nets.complexity import model_complexity
    from posereg.runs import RunDir

    template = load_template(str(write_template(tmp_path / "tiny_cost.yaml", {"method": "i1,r1", "seed": "0,1"})))
    plan = plan_sweep(template, ["trainer.max_epochs=3", "data.epoch_length=10"], runs_dir=tmp_path / "runs")
    cells = estimate(plan)
    assert [c.status for c in cells] == ["pending"] * 4
    # 3 epochs of min(limit_train_batches=2, 10 // batch 2 = 5) batches
    assert [c.steps for c in cells] == [6] * 4 and [c.images for c in cells] == [12] * 4
    cfg = compose_cell_config(plan, plan.cells()[0])
    counted = model_complexity(build_net(cfg, data_info(cfg)), 32)
    i1 = cells[0]
    assert (i1.params, i1.macs) == (counted.params, counted.macs)
    assert i1.train_flops == 6 * counted.macs * 12
    assert i1.checkpoint_bytes == 2 * 4 * counted.params * 3  # best + last, weights + Adam's two moments
    assert "no finished cell" in cost_table(plan, cells)
    # one finished cell measures the rate: the identical pending cell (other seed) is estimated at its time
    done = RunDir(plan.run_dir(plan.cells()[0]))
    done.path.mkdir(parents=True)
    done.update_status(status="done", duration_s=120.0)
    cells = estimate(plan)
    assert summary(cells)["seconds_per_gmac_image"] == pytest.approx(120.0 / (12 * counted.macs / 1e9))
    text = cost_table(plan, cells)
    r1_time = 120.0 * cells[2].macs / counted.macs  # r1 cells scale with their MACs
    assert f"time still to run: {(120.0 + 2 * r1_time) / 60:.0f} min for 3 cells" in text
    assert sweep_main([str(tmp_path / "tiny_cost.yaml"), f"paths.runs_dir={tmp_path / 'runs'}", "--cost"]) == 0


def test_a_bench_template_runs_through_posereg_sweep_with_its_own_axes(tmp_path: Path, monkeypatch) -> None:
    from posereg.cli.sweep import main as sweep_main

    monkeypatch.setenv("POSEREG_RUNS_DIR", str(tmp_path))
    # `size` is the bench function's argument, not a config key: no "did you mean" for it
    assert sweep_main(["sspnet_table4", "size=4,8", "seed=0", "--no-report"]) == 0
    rows = {}
    for metrics in sorted((tmp_path / "sspnet_table4").glob("*/metrics.json")):
        data = json.loads(metrics.read_text())
        rows[metrics.parent.name] = data
    assert sorted(rows) == ["size=4,seed=0", "size=8,seed=0"]
    coarse, fine = rows["size=4,seed=0"]["final"], rows["size=8,seed=0"]["final"]
    assert coarse["cell_mm"] == 500.0 and fine["cell_mm"] == 250.0  # a 2 m cube in 4 and 8 cells
    assert fine["argmax_mm"] < coarse["argmax_mm"]  # a finer grid quantizes less
    setup = json.loads((tmp_path / "sspnet_table4" / "size=4,seed=0" / "metrics.json").read_text())["setup"]
    assert setup["device"] == "CPU" and setup["device_model"] and setup["torch_threads"] >= 1
