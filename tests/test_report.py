"""Report on hand-made run directories: exact tables (md, csv), paper deltas, partial grids, html plots."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from posereg.cli.report import main as report_main
from posereg.errors import ConfigError
from posereg.report.build import build_report, make_table, write_manifest
from posereg.report.claims import FEW_SEEDS, evaluate_claims
from posereg.report.collect import collect, read_csv_metrics
from posereg.report.paper import lookup, resolve
from posereg.report.table import build_table
from posereg.report.template import list_templates, load_template, parse_template

TEMPLATE = {
    "name": "toy",
    "title": "Toy table",
    "grid": {"method": "h1,i1", "seed": "0,1"},
    "fixed": {"data": "synth2d"},
    "table": {
        "rows": {"axis": "method", "labels": {"h1": "H1", "i1": "I1"}},
        "metrics": [
            {"name": "val/pckh@0.5", "label": "PCKh@0.5"},
            {"name": "val/auc", "label": "AUC"},
        ],
        "paper": {"H1": {"val/auc": 50.0}, "I1": {"val/auc": "ref:integral_human_pose_regression/h36m/p2_mpjpe"}},
        "claims": [{"label": "I1 beats H1", "a": "I1", "b": "H1", "metrics": {"val/auc": 5.4}}],
    },
}


def make_run(grid: Path, overrides: dict[str, str], status: str, final: dict | None = None,
             curve: list[float] | None = None, csv_rows: list[dict] | None = None, error: str | None = None,
             extras: dict | None = None, setup: dict | None = None) -> Path:
    """Write a fake run directory in the format of DESIGN §5."""
    key = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()) if k != "seed") + f",seed={overrides['seed']}"
    run = grid / key
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()]))
    (run / "status.json").write_text(json.dumps({
        "status": status, "started_at": "2024-01-01T10:00:00", "ended_at": "2024-01-01T10:05:00",
        "error": error, "run_key": key, "attempts": 1, "overrides": [f"{k}={v}" for k, v in overrides.items()],
    }))
    if final is not None:
        ex = {"val": {"pckh_curve": curve}} if curve else {}
        ex.update(extras or {})
        (run / "metrics.json").write_text(json.dumps({"final": final, "best": final, "test": {},
                                                      "monitor": "val/pckh@0.5", "extras": ex,
                                                      **({"setup": setup} if setup else {})}))
    if csv_rows:
        (run / "csv").mkdir()
        with open(run / "csv" / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["epoch", "step", "train/loss", "val/pckh@0.5"])
            w.writeheader()
            w.writerows(csv_rows)
    return run


@pytest.fixture
def toy_grid(tmp_path: Path) -> Path:
    """H1 seeds 0/1 done, I1 seed 0 done, I1 seed 1 failed."""
    grid = tmp_path / "runs" / "toy"
    curve = [min(100.0, 400.0 * t / 50) for t in range(51)]
    rows = [{"epoch": 0, "step": 3, "train/loss": 1.0, "val/pckh@0.5": ""},
            {"epoch": 0, "step": 3, "train/loss": "", "val/pckh@0.5": 40.0},
            {"epoch": 1, "step": 7, "train/loss": "", "val/pckh@0.5": 70.0}]
    make_run(grid, {"data": "synth2d", "method": "h1", "seed": "0"}, "done",
             {"val/pckh@0.5": 80.0, "val/auc": 50.0}, curve, rows)
    make_run(grid, {"data": "synth2d", "method": "h1", "seed": "1"}, "done",
             {"val/pckh@0.5": 82.0, "val/auc": 54.0}, curve, rows)
    make_run(grid, {"data": "synth2d", "method": "i1", "seed": "0"}, "done",
             {"val/pckh@0.5": 81.0, "val/auc": 60.0}, curve)
    make_run(grid, {"data": "synth2d", "method": "i1", "seed": "1"}, "failed",
             error="Traceback...\nConfigError: method.head.num_deconv=9 is impossible")
    write_manifest(grid, "toy", {"method": ["h1", "i1"], "seed": ["0", "1"]}, {"data": "synth2d"}, ["x"])
    return grid


def test_table_means_stds_and_paper_deltas(toy_grid: Path) -> None:
    table = build_table(parse_template(TEMPLATE), collect([toy_grid]), fixed={"data": "synth2d"})
    table.claims = evaluate_claims(table)
    h1_auc = table.cells[("h1", "", "val/auc")]
    assert h1_auc.mean == 52.0 and h1_auc.std == pytest.approx(math.sqrt(8.0))
    assert table.cells[("h1", "", "val/pckh@0.5")].std == pytest.approx(math.sqrt(2.0))
    i1 = table.cells[("i1", "", "val/auc")]
    assert (i1.n, i1.expected, i1.mean, i1.std) == (1, 2, 60.0, None)
    assert table.paper[("I1", "", "val/auc")] == 49.6  # resolved from paper_numbers.yaml
    ((pair,),) = [c.pairs for c in table.claims]
    assert pair.ours == pytest.approx(8.0) and pair.pair.paper == 5.4 and pair.pair.expect == 1
    assert pair.verdict == FEW_SEEDS and pair.seeds == (1, 2)  # I1 has one seed done: no interval, no verdict
    assert table.status_line() == "PARTIAL: 3/4 runs done (1 failed)"


def test_markdown_is_exact(toy_grid: Path) -> None:
    report = build_report([toy_grid], parse_template(TEMPLATE), plots=False)
    md = report.files["md"].read_text()
    expected = "\n".join([
        "| method | PCKh@0.5 | AUC | AUC paper | Δ |",
        "|---|---|---|---|---|",
        "| H1 | 81.0 ± 1.4 | 52.0 ± 2.8 | 50.0 | +2.0 |",
        "| I1 | 81.0 (1/2) | 60.0 (1/2) | 49.6 | +10.4 |",
    ])
    assert expected in md
    assert "| I1 beats H1 [I1 − H1] | AUC | +8.0 | 1/2 |  | +5.4 | n < 3 seeds: no verdict |" in md
    assert "- Claims: 0 of 1 claims reproduced, 0 inconclusive, 0 contradicted, 1 without a verdict" in md
    assert "**PARTIAL: 3/4 runs done (1 failed)**" in md
    assert "ConfigError: method.head.num_deconv=9 is impossible" in md  # failed cell reported with its error


def test_csv_is_exact(toy_grid: Path) -> None:
    report = build_report([toy_grid], parse_template(TEMPLATE), plots=False)
    rows = list(csv.DictReader(io.StringIO(report.files["csv"].read_text())))
    by = {(r["kind"], r["row"], r["metric"]): r for r in rows}
    h1 = by[("cell", "H1", "val/auc")]
    assert float(h1["mean"]) == 52.0 and float(h1["std"]) == pytest.approx(2.8284271247)
    assert float(h1["paper"]) == 50.0 and float(h1["delta"]) == 2.0 and h1["n"] == "2"
    i1 = by[("cell", "I1", "val/pckh@0.5")]
    assert (i1["mean"], i1["std"], i1["n"], i1["expected"], i1["paper"]) == ("81.0", "", "1", "2", "")
    assert i1["status"] == "done=1;failed=1"
    claim = by[("claim", "I1 beats H1", "val/auc")]
    assert float(claim["mean"]) == 8.0 and float(claim["paper"]) == 5.4 and claim["ci_low"] == ""
    assert claim["verdict"] == FEW_SEEDS and claim["unit"] == "difference"


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])
        self.tables += tag == "table"


def test_html_is_self_contained_with_plots(toy_grid: Path) -> None:
    report = build_report([toy_grid], parse_template(TEMPLATE))
    parser = _Images()
    parser.feed(report.files["html"].read_text())
    assert parser.tables == 3  # results, claims, failed runs
    assert len(parser.srcs) == 2  # PCKh curves + validation curves (no numeric axis -> no trend)
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report.files["pckh_curves"].read_bytes())[:4] == b"\x89PNG"
    tex = report.files["tex"].read_text()
    assert r"\toprule" in tex and r"81.0 $\pm$ 1.4" in tex and r"AUC paper & $\Delta$" in tex


def test_partial_grid_and_running_runs(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    make_run(grid, {"data": "synth2d", "method": "h1", "seed": "0"}, "done", {"val/pckh@0.5": 70.0, "val/auc": 40.0})
    make_run(grid, {"data": "synth2d", "method": "h1", "seed": "1"}, "running")
    write_manifest(grid, "toy", {"method": ["h1", "i1"], "seed": ["0", "1"]}, {"data": "synth2d"}, [])
    table = make_table([grid], parse_template(TEMPLATE))
    assert table.partial
    assert table.status_line() == "PARTIAL: 1/4 runs done (1 running, 2 not started)"
    md = build_report([grid], parse_template(TEMPLATE), plots=False).files["md"].read_text()
    assert "| H1 | 70.0 (1/2) | 40.0 (1/2) | 50.0 | -10.0 |" in md
    assert "| I1 | pending | pending | 49.6 | – |" in md


def test_other_fixed_settings_are_ignored(toy_grid: Path) -> None:
    make_run(toy_grid, {"data": "synth3d", "method": "h1", "seed": "0"}, "done", {"val/pckh@0.5": 1.0, "val/auc": 1.0})
    table = make_table([toy_grid], parse_template(TEMPLATE))
    assert table.cells[("h1", "", "val/auc")].mean == 52.0
    (foreign,) = table.foreign  # listed, not dropped silently
    assert foreign.record.path.name == "data=synth3d,method=h1,seed=0"
    assert foreign.reason == "other fixed settings: data=synth3d (grid: synth2d)"


def test_per_output_layout_and_reduction(tmp_path: Path) -> None:
    raw = {
        "name": "pyr",
        "grid": {"seed": "0"},
        "table": {
            "rows": {"outputs": {"0": "L0", "1": "L1"}},
            "columns": {"outputs": {"1": "1", "2": "2"}},
            "metric_name": "{metric}@p{col}l{row}",
            "metrics": [{"name": "test/mpjpe", "label": "MPJPE", "from": "test", "higher_is_better": False}],
            "paper": {"L1": {"1": {"test/mpjpe": 80.0}}, "L0": {"2": {"test/mpjpe": 60.0}}},
            "claims": [{"label": "p2l0 vs p1l1", "a": {"row": "L0", "col": "2"},
                        "b": {"row": "L1", "col": "1"}, "metric": "test/mpjpe", "paper": 25.0,
                        "kind": "reduction_pct"}],
        },
    }
    run = make_run(tmp_path / "pyr", {"seed": "0"}, "done", {})
    data = json.loads((run / "metrics.json").read_text())
    data["test"] = {"test/mpjpe@p1l1": 90.0, "test/mpjpe@p2l0": 63.0, "test/mpjpe@p2l1": 70.0}
    (run / "metrics.json").write_text(json.dumps(data))
    table = make_table([tmp_path / "pyr"], parse_template(raw))
    assert table.cells[("1", "1", "test/mpjpe")].mean == 90.0
    assert table.cells[("0", "1", "test/mpjpe")].expected == 0  # no PB there: a dash, not a missing run
    md = build_report([tmp_path / "pyr"], parse_template(raw), plots=False).files["md"].read_text()
    assert "| L0 | – | – | – | 63.0 | 60.0 | +3.0 |" in md
    assert "| L1 | 90.0 | 80.0 | +10.0 | 70.0 | – | – |" in md
    ((pair,),) = [c.pairs for c in table.claims]
    assert pair.ours == pytest.approx(30.0) and pair.pair.expect == -1  # 100 (90-63)/90; a reduction: a < b


def test_csv_metrics_reader_skips_empty_cells(toy_grid: Path) -> None:
    series = read_csv_metrics(toy_grid / "data=synth2d,method=h1,seed=0")
    assert series["val/pckh@0.5"] == [(0.0, 40.0), (1.0, 70.0)]
    assert series["train/loss"] == [(0.0, 1.0)]


def test_cli_report_and_compare(toy_grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    template_file = tmp_path / "toy.yaml"
    template_file.write_text(yaml.safe_dump(TEMPLATE, allow_unicode=True))
    assert report_main([str(toy_grid), "--template", str(template_file), "--no-plots"]) == 0
    assert (toy_grid / "report" / "report.html").is_file()
    assert report_main(["--compare", str(toy_grid), str(toy_grid), "--template", str(template_file),
                        "--out", str(tmp_path / "cmp")]) == 0
    cmp_md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| H1 |  | AUC | 52.0 ± 2.8 | 52.0 ± 2.8 | +0.0 |" in cmp_md
    assert report_main([str(tmp_path / "nowhere")]) == 2
    assert "no run directory matches" in capsys.readouterr().err


def test_inferred_layout_without_template(toy_grid: Path) -> None:
    (toy_grid / "sweep.yaml").unlink()
    table = make_table([toy_grid])
    assert table.template.rows.axes == ["method"]
    assert [m.name for m in table.metrics] == ["val/pckh@0.5", "val/auc"]
    assert table.cells[("h1", "", "val/auc")].mean == 52.0


def test_paper_refs_and_bad_templates() -> None:
    assert lookup("ssp_net/table4_quantization_mm/argmax_gt_volumetric/8") == 128.6
    assert lookup("ssp_net/table5_mpjpe_per_output/L1_16x16/0") == 85.5
    assert resolve(3.5) == 3.5
    with pytest.raises(ConfigError, match="no key"):
        lookup("ssp_net/nope")
    bad = {**TEMPLATE, "table": {**TEMPLATE["table"], "rows": {"axis": "backbone"}}}
    with pytest.raises(ConfigError, match="not a key of `grid`"):
        parse_template(bad)


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("name", list_templates())
def test_shipped_templates_parse_and_resolve(name: str, real: bool) -> None:
    if real and not load_template(name).real:
        with pytest.raises(ConfigError, match="no `real:` section"):
            load_template(name, real=True)
        return
    t = load_template(name, real=real)
    assert t.metrics and (t.kind == "bench" or t.grid)
    table = build_table(t, [])  # every paper ref resolves (claims naming unknown cells fail to load)
    assert len(table.row_keys) >= 2 and table.expected_runs >= 1
    assert all(v is not None for v in table.paper.values())


def test_every_run_under_a_folder_is_reported(tmp_path: Path) -> None:
    # runs/default after `make train`, two more seeds, an H1 run and a smaller-input run: no manifest
    folder = tmp_path / "default"
    for overrides in ({"seed": "0"}, {"seed": "1"}, {"seed": "2"}, {"method": "h1", "seed": "0"},
                      {"method": "h1", "seed": "1"}, {"data.input_size": "64", "seed": "0"}):
        make_run(folder, overrides, "done", {"val/pckh@0.5": 80.0, "val/auc": 50.0})
    table = make_table([folder])
    assert table.status_line() == "6/6 runs done" and not table.foreign
    assert [table.row_label(k) for k in table.row_keys] == ["defaults", "data.input_size=64", "method=h1"]
    assert [table.cells[(k, "", "val/auc")].n for k in table.row_keys] == [3, 1, 2]


def test_grid_folder_counts_the_cells_of_earlier_sweep_calls(toy_grid: Path) -> None:
    # the last call only added seed 2 of I1 (still running): the report keeps the template's other cells
    make_run(toy_grid, {"data": "synth2d", "method": "i1", "seed": "2"}, "running")
    make_run(toy_grid, {"data": "synth2d", "method": "r1", "seed": "0"}, "done", {"val/pckh@0.5": 1.0, "val/auc": 1.0})
    write_manifest(toy_grid, "toy", {"method": ["i1"], "seed": ["2"]}, {"data": "synth2d"}, ["x"])
    table = make_table([toy_grid], parse_template(TEMPLATE))
    assert table.status_line() == "PARTIAL: 3/6 runs done (1 running, 1 failed, 1 not started)"
    assert table.cells[("h1", "", "val/auc")].mean == 52.0
    (foreign,) = table.foreign
    assert foreign.reason == "outside the grid: method=r1"
    md = build_report([toy_grid], parse_template(TEMPLATE), plots=False).files["md"].read_text()
    assert (f"- Runs under {toy_grid}: 6 (done 4 · running 1 · interrupted 0 · failed 1 · pending 0); 1 foreign "
            "(not cells of this grid, listed below).") in md
    assert "| data=synth2d,method=r1,seed=0 | done | outside the grid: method=r1 |" in md


SETUP = {"data": ["synth"], "joint_set": "mpii16", "method": "i1", "backbone": "resnet18", "input_size": 64,
         "batch_size": 32, "epochs": 14, "steps": 2688, "device": "CPU x1", "precision": "bf16-mixed"}


def test_header_states_the_setup_and_protocol(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    for seed, steps in (("0", 2688), ("1", 20)):
        run = make_run(grid, {"method": "h1", "seed": seed}, "done", {"val/pckh@0.5": 80.0, "val/auc": 50.0},
                       setup={**SETUP, "seed": int(seed), "steps": steps})
        status = json.loads((run / "status.json").read_text())
        (run / "status.json").write_text(json.dumps({**status, "duration_s": 5400.0, "git_commit": "f" * 40}))
    raw = {**TEMPLATE, "real": {"experiment": "integral_mpii"}, "fixed": {}}
    md = build_report([grid], parse_template(raw), plots=False).files["md"].read_text()
    assert ("- Setup of 2 done runs: data synth · joint set mpii16 · backbone resnet18 · seeds 0, 1 · input 64 · "
            "batch 32 · epochs 14 · steps 2688, 20 (varies) · device CPU x1 · precision bf16-mixed.") in md
    assert "- Code: git fffffff (2) for every done run." in md
    assert "- Time: 2024-01-01 10:00 → 2024-01-01 10:05 UTC; 3.00 h of run time" in md
    assert ("- Protocol: the runs use SynthPose, the paper MPII: paper numbers are shown for reference only, "
            "without Δ.") in md
    # SynthPose vs MPII: the paper's number alone, labelled with its dataset, never a delta
    assert ("| method | PCKh@0.5 | AUC | AUC paper (MPII) |\n|---|---|---|---|\n"
            "| H1 | 80.0 ± 0.0 | 50.0 ± 0.0 | 50.0 |") in md
    rows = list(csv.DictReader(io.StringIO(build_report([grid], parse_template(raw), plots=False)
                                           .files["csv"].read_text())))
    h1 = next(r for r in rows if r["kind"] == "cell" and r["row"] == "H1" and r["metric"] == "val/auc")
    assert h1["paper"] == "50.0" and h1["delta"] == ""


def test_per_part_and_per_joint_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    grid = tmp_path / "toy"
    for seed, head in (("0", 90.0), ("1", 94.0)):
        make_run(grid, {"method": "h1", "seed": seed}, "done", {"val/pckh@0.5": 80.0, "val/auc": 50.0},
                 setup={**SETUP, "joint_set": "h36m17"},
                 extras={"val": {"pckh@0.5/head": head, "pckh@0.5/ankle": None, "pckh@0.5/head@stage1": 1.0,
                                 "mpjpe_joint/j0": 0.0, "mpjpe_joint/j3": 100.0 + float(seed)}})
    make_run(grid, {"method": "i1", "seed": "0"}, "done", {"val/pckh@0.5": 80.0, "val/auc": 50.0},
             extras={"val": {"pckh@0.5/head": 80.0, "pckh@0.5/ankle": 60.0}})
    md = build_report([grid], parse_template(TEMPLATE), plots=False).files["md"].read_text()
    assert "\n".join(["### PCKh@0.5 per part (val, %)", "", "|  | H1 | I1 |", "|---|---|---|",
                      "| head | 92.0 | 80.0 |", "| ankle | – | 60.0 |"]) in md
    assert "\n".join(["### MPJPE per joint (val, mm)", "", "|  | H1 | I1 |", "|---|---|---|",
                      "| pelvis | 0.0 | – |", "| r_ankle | 100.5 | – |"]) in md
    template_file = tmp_path / "toy.yaml"
    template_file.write_text(yaml.safe_dump(TEMPLATE, allow_unicode=True))
    assert report_main([str(grid), "--template", str(template_file), "--per-joint"]) == 0
    out = capsys.readouterr().out
    assert "| head | 92.0 | 80.0 |" in out and "| r_ankle | 100.5 | – |" in out
