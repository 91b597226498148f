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
        "comparisons": [{"label": "I1 − H1", "a": "I1", "b": "H1", "metrics": {"val/auc": 5.4}}],
    },
}


def make_run(grid: Path, overrides: dict[str, str], status: str, final: dict | None = None,
             curve: list[float] | None = None, csv_rows: list[dict] | None = None, error: str | None = None,
             extras: dict | None = None) -> Path:
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
                                                      "monitor": "val/pckh@0.5", "extras": ex}))
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
    h1_auc = table.cells[("h1", "", "val/auc")]
    assert h1_auc.mean == 52.0 and h1_auc.std == pytest.approx(math.sqrt(8.0))
    assert table.cells[("h1", "", "val/pckh@0.5")].std == pytest.approx(math.sqrt(2.0))
    i1 = table.cells[("i1", "", "val/auc")]
    assert (i1.n, i1.expected, i1.mean, i1.std) == (1, 2, 60.0, None)
    assert table.paper[("I1", "", "val/auc")] == 49.6  # resolved from paper_numbers.yaml
    (claim,) = table.comparisons
    assert claim.ours == pytest.approx(8.0) and claim.delta == pytest.approx(2.6)
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
    assert "| I1 − H1 | AUC | +8.0 | +5.4 | +2.6 |" in md
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
    claim = by[("comparison", "I1 − H1", "val/auc")]
    assert float(claim["mean"]) == 8.0 and float(claim["delta"]) == pytest.approx(2.6)


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
            "comparisons": [{"label": "p2l0 vs p1l1", "a": {"row": "L0", "col": "2"},
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
    (claim,) = table.comparisons
    assert claim.ours == pytest.approx(30.0) and claim.delta == pytest.approx(5.0)  # 100 (90-63)/90


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
    table = build_table(t, [], strict=True)  # every paper ref resolves, every comparison names real cells
    assert len(table.row_keys) >= 2 and table.expected_runs >= 1
    assert all(v is not None for v in table.paper.values())
