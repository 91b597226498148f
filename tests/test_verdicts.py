"""Verdicts a referee would sign, on hand-made runs with known answers: direction and magnitude, equivalence
(TOST), Holm within a group, % reductions with the denominator's variance, convergence flags, budget-sensitive
claims, and reports rebuilt byte for byte from their runs.csv."""

from __future__ import annotations

import csv
import math
import shutil
import statistics
from pathlib import Path

import pytest
from scipy import stats

from posereg.cli.report import main as report_main
from posereg.report.build import build_report, make_table
from posereg.report.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    LARGER,
    NOT_COMPARABLE,
    REPRODUCED,
    SMALLER,
    budget_sensitivity,
    summary_line,
)
from posereg.report.curves import CurvePoint, late_gain
from posereg.report.manifest import write_manifest
from posereg.report.stats import DELTA_RATIO, Estimate, holm, paired, reduction, tost_p
from posereg.report.template import parse_template
from test_claims import T975_DF2, only_pair, two_rows, write_run

T95_DF2 = stats.t.ppf(0.95, 2)  # the 90 % interval's quantile with 3 seeds


def add_curve(run: Path, metric: str, points: list[tuple[int, float]]) -> None:
    """csv/metrics.csv with one validation row per (step, value), epochs 0, 1, ..."""
    (run / "csv").mkdir(exist_ok=True)
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "step", metric])
        w.writeheader()
        for epoch, (step, value) in enumerate(points):
            w.writerow({"epoch": epoch, "step": step, metric: value})


def grid_of(tmp_path: Path, cells: dict[str, list[float]], metric: str = "val/auc", name: str = "toy") -> Path:
    grid = tmp_path / name
    for method, values in cells.items():
        for seed, v in enumerate(values):
            write_run(grid, {"method": method, "seed": str(seed)}, {metric: v})
    return grid


# -- statistics, against hand computations ------------------------------------------------------------------------

def test_holm_adjusts_step_down_and_keeps_order() -> None:
    # sorted 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_tost_p_is_the_larger_one_sided_p() -> None:
    est = paired([1.0, 1.5, 0.5])  # mean 1, sd 0.5
    se = 0.5 / math.sqrt(3)
    expected = max(stats.t.sf((1.0 + 2.0) / se, 2), stats.t.cdf((1.0 - 2.0) / se, 2))
    assert tost_p(est, 2.0) == pytest.approx(expected)
    assert tost_p(est, 2.0) < 0.05 < tost_p(est, 1.2)  # inside a margin of 2, not of 1.2


def test_reduction_delta_method_carries_the_denominators_variance() -> None:
    a, b = {"0": 80.0, "1": 90.0, "2": 70.0}, {"3": 100.0, "4": 120.0, "5": 110.0, "6": 90.0}
    est = reduction(a, b)
    ma, mb = 80.0, 105.0
    va, vb = statistics.variance(a.values()) / 3, statistics.variance(b.values()) / 4
    ga, gb = (100 / mb) ** 2 * va, (100 * ma / mb**2) ** 2 * vb
    assert est is not None and est.test == DELTA_RATIO
    assert est.mean == pytest.approx(100 * (1 - ma / mb))
    assert est.se == pytest.approx(math.sqrt(ga + gb))
    assert est.df == pytest.approx((ga + gb) ** 2 / (ga**2 / 2 + gb**2 / 3))
    ignoring_b = 100 / mb * math.sqrt(va)  # what scaling a - b by 100 / mean(b) would claim
    assert est.se > ignoring_b


def test_estimate_interval_and_p_value() -> None:
    est = Estimate(2.0, 0.5, 2.0, "paired t", (3,))
    assert est.interval(0.95) == pytest.approx((2.0 - T975_DF2 * 0.5, 2.0 + T975_DF2 * 0.5))
    assert est.interval(0.90) == pytest.approx((2.0 - T95_DF2 * 0.5, 2.0 + T95_DF2 * 0.5))
    assert est.p_value() == pytest.approx(2 * stats.t.sf(4.0, 2))


# -- claims --------------------------------------------------------------------------------------------------------

def test_direction_reproduced_magnitude_contradicted_and_equivalence(tmp_path: Path) -> None:
    """The paper says +6 % (I* vs R1) and "I1 beats H1 by 0.5 only"; ours: +20 % and +10 points."""
    grid = grid_of(tmp_path, {"h1": [100.0, 110.0, 90.0], "i1": [80.0, 88.0, 72.0]}, "val/mpjpe")
    reduction_claim = {"label": "I1 improves H1", "a": "I1", "b": "H1", "metric": "val/mpjpe",
                       "kind": "reduction_pct", "paper": 6.0}
    pair = only_pair(make_table([grid], parse_template(two_rows([reduction_claim]))))
    assert pair.ours == pytest.approx(20.0) and pair.high - pair.low == pytest.approx(0.0, abs=1e-9)
    assert pair.verdict == REPRODUCED and pair.magnitude == LARGER  # right direction, 3x the paper's size

    grid2 = grid_of(tmp_path, {"h1": [50.0, 51.0, 52.0], "i1": [60.0, 61.2, 61.8]}, name="toy2")
    small = {"label": "I1 beats H1 by 0.5 only", "a": "I1", "b": "H1", "metric": "val/auc", "kind": "equivalence",
             "margin": 2.0, "paper": 0.5}
    direction = {"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "paper": 0.5}
    table = make_table([grid2], parse_template(two_rows([small, direction])))
    equiv, plain = (r.pairs[0] for r in table.claims)
    diffs = [10.0, 10.2, 9.8]
    half90 = T95_DF2 * statistics.stdev(diffs) / math.sqrt(3)
    assert (equiv.low, equiv.high) == (pytest.approx(10.0 - half90), pytest.approx(10.0 + half90))
    assert equiv.confidence == 0.90 and equiv.verdict == CONTRADICTED  # [9.8, 10.2] lies beyond +2
    assert plain.verdict == REPRODUCED and plain.magnitude == NOT_COMPARABLE  # no protocol: SynthPose vs MPII
    line = summary_line(table.claims)
    assert line.startswith("direction: 1 of 1 claim reproduced, 0 inconclusive, 0 contradicted; "
                           "equivalence: 0 of 1 claim reproduced, 0 inconclusive, 1 contradicted")
    assert "2 paper values not comparable" in line


def test_equivalence_inside_the_margin_is_reproduced(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"h1": [50.0, 51.0, 52.0], "i1": [50.4, 51.6, 52.3]})
    claim = {"label": "comparable", "a": "I1", "b": "H1", "metric": "val/auc", "kind": "equivalence", "margin": 2.0}
    pair = only_pair(make_table([grid], parse_template(two_rows([claim]))))
    assert pair.verdict == REPRODUCED and pair.p is not None and pair.p < 0.05


def test_equivalence_needs_a_margin_and_forbids_expect() -> None:
    from posereg.errors import ConfigError

    with pytest.raises(ConfigError, match="needs `margin`"):
        parse_template(two_rows([{"label": "x", "a": "I1", "b": "H1", "metric": "val/auc", "kind": "equivalence"}]))
    with pytest.raises(ConfigError, match="belongs to `kind: equivalence`"):
        parse_template(two_rows([{"label": "x", "a": "I1", "b": "H1", "metric": "val/auc", "margin": 1.0,
                                  "expect": "a > b"}]))


def test_magnitude_smaller_than_the_paper(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"h1": [100.0, 110.0, 90.0], "i1": [95.0, 104.5, 85.5]}, "val/mpjpe")  # 5 % each
    claim = {"label": "r", "a": "I1", "b": "H1", "metric": "val/mpjpe", "kind": "reduction_pct", "paper": 17.7}
    pair = only_pair(make_table([grid], parse_template(two_rows([claim]))))
    assert pair.ours == pytest.approx(5.0) and pair.verdict == REPRODUCED and pair.magnitude == SMALLER


def test_holm_keeps_a_lone_marginal_contradiction_inconclusive(tmp_path: Path) -> None:
    """Three pairs of a group; one is reversed with p ~ 0.02 alone (the smallest p of the three, so Holm multiplies
    it by 3), the other two are unclear: the reversal does not survive the correction."""
    grid = tmp_path / "toy"
    values = {"x": [10.0, 11.0, 12.0], "a": [11.0, 10.5, 14.0], "b": [9.0, 13.0, 12.5], "c": [7.0, 9.2, 9.5]}
    for method, vs in values.items():
        for seed, v in enumerate(vs):
            write_run(grid, {"method": method, "seed": str(seed)}, {"val/auc": v})
    template = {"name": "toy", "grid": {"method": "x,a,b,c", "seed": "0,1,2"},
                "table": {"rows": {"axis": "method"}, "metrics": [{"name": "val/auc"}],
                          "claims": [{"label": "every other beats x", "metric": "val/auc", "expect": "a > b",
                                      "pairs": [{"a": "a", "b": "x"}, {"a": "b", "b": "x"}, {"a": "c", "b": "x"}]}]}}
    table = make_table([grid], parse_template(template))
    a, b, c = table.claims[0].pairs
    raw = paired([7.0 - 10.0, 9.2 - 11.0, 9.5 - 12.0])
    assert raw.high < 0 and 0.05 / 3 < raw.p_value() < 0.05  # alone it would be contradicted
    assert c.p == pytest.approx(raw.p_value()) and c.p_holm == pytest.approx(min(1.0, 3 * raw.p_value()))
    assert (a.verdict, b.verdict, c.verdict) == (INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE)
    assert table.claims[0].verdict == INCONCLUSIVE


def test_difference_of_differences_shows_both_sides(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    auc = {("h1", "big"): [31.0, 32.0, 32.2], ("h1", "small"): [31.5, 32.6, 32.5],   # H1 gains 0.5, 0.6, 0.3
           ("i1", "big"): [22.0, 22.5, 22.4], ("i1", "small"): [33.0, 32.8, 33.2]}  # I1 gains 11, 10.3, 10.8
    for (method, size), values in auc.items():
        for seed, v in enumerate(values):
            write_run(grid, {"method": method, "size": size, "seed": str(seed)}, {"val/auc": v})
    claim = {"label": "halving costs H1 more than I1", "metric": "val/auc", "expect": "a > b",
             "a": {"row": "H1", "col": "(a)", "minus": {"row": "H1", "col": "(b)"}},
             "b": {"row": "I1", "col": "(a)", "minus": {"row": "I1", "col": "(b)"}}}
    template = two_rows([claim], columns={"axis": "size", "labels": {"big": "(a)", "small": "(b)"}})
    report = build_report([grid], parse_template(template), plots=False)
    (pair,) = report.table.claims[0].pairs
    (h_text, h_est), (i_text, i_est) = pair.components
    assert h_text == "H1 (a) − H1 (b)" and h_est.mean == pytest.approx(-0.4667, abs=1e-3)
    assert i_text == "I1 (a) − I1 (b)" and i_est.mean == pytest.approx(-10.7, abs=1e-3)  # neither dropped
    md = report.files["md"].read_text()
    assert "each side (95 % CI)" in md and "H1 (a) − H1 (b) -0.5 ± " in md and "I1 (a) − I1 (b) -10.7 ± " in md


# -- convergence and budgets ---------------------------------------------------------------------------------------

def test_late_gain_interpolates_the_last_quarter() -> None:
    curve = [CurvePoint(e, s, v) for e, (s, v) in enumerate([(100, 10.0), (200, 20.0), (300, 24.0), (400, 26.0)])]
    assert late_gain(curve) == pytest.approx(26.0 - 24.0)  # 75 % of 400 = step 300
    odd = [CurvePoint(0, 96, 10.0), CurvePoint(1, 192, 30.0), CurvePoint(2, 288, 40.0)]
    assert late_gain(odd) == pytest.approx(40.0 - (30.0 + 10.0 * (216 - 192) / 96))  # 75 % of 288 = 216
    # lower is better: 75 % of step 2 is step 1.5, where the interpolated error is 190
    assert late_gain([CurvePoint(0, 1, 200.0), CurvePoint(1, 2, 180.0)], higher_is_better=False) == pytest.approx(10)
    assert late_gain(curve[:1]) is None


def budget_grid(tmp_path: Path, rising: bool) -> Path:
    """budget_scale 1: I1 - H1 = +1 +- 2 (inconclusive); 3: +6 +- 0.2 (reproduced). Curves: flat or rising."""
    grid = tmp_path / "toy"
    values = {("h1", "1"): [50.0, 52.0, 51.0], ("i1", "1"): [53.0, 51.0, 52.0],
              ("h1", "3"): [60.0, 61.0, 62.0], ("i1", "3"): [66.1, 66.9, 68.0]}
    for (method, budget), vs in values.items():
        for seed, v in enumerate(vs):
            run = write_run(grid, {"budget_scale": budget, "method": method, "seed": str(seed)}, {"val/auc": v})
            steps = 100 * int(budget)
            end = v if not rising else v
            start = v - (10.0 if rising else 0.1)
            add_curve(run, "val/auc", [(steps // 4, start - 5), (steps // 2, start), (steps * 3 // 4, start),
                                       (steps, end)])
    return grid


def test_budget_sensitive_claims_and_rising_cells(tmp_path: Path) -> None:
    grid = budget_grid(tmp_path, rising=True)
    template = two_rows([{"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "expect": "a > b"}])
    template["grid"]["budget_scale"] = "1,3"
    write_manifest(grid, "toy", {"budget_scale": ["1", "3"], "method": ["h1", "i1"], "seed": ["0", "1", "2"]}, {},
                   ["x"])
    report = build_report([grid], parse_template(template), plots=False)
    table = report.table
    assert [t.budget for t in (table, *table.others)] == ["budget_scale=3", "budget_scale=1"]
    assert table.claims[0].verdict == REPRODUCED and table.others[0].claims[0].verdict == INCONCLUSIVE
    assert table.claims[0].budget_sensitive
    assert table.claims[0].by_budget == {"budget_scale=3": REPRODUCED, "budget_scale=1": INCONCLUSIVE}
    conv = table.convergence[("h1", "")]
    assert conv.gain == pytest.approx(10.0) and conv.rising  # +10 over the last quarter of 61: > 2 %
    md = report.files["md"].read_text()
    assert "| I1 beats H1 [I1 − H1] ↑ | AUC |" in md and "| reproduced · budget-sensitive |" in md
    assert "## Verdicts at each budget" in md and "## Results at budget_scale=1" in md
    assert "2 of 2 cells still rising" in md
    assert "budget-sensitive: 1 of 1 claim judged at two budgets" in summary_line(table.claims)


def test_budget_sensitivity_needs_two_budgets_with_a_verdict() -> None:
    assert budget_sensitivity([REPRODUCED, CONTRADICTED]) is True
    assert budget_sensitivity([REPRODUCED, "too few seeds", REPRODUCED]) is False
    assert budget_sensitivity([REPRODUCED, "not produced by these runs"]) is None
    assert budget_sensitivity(iter([INCONCLUSIVE, REPRODUCED])) is True  # a generator is read once


def test_a_budget_without_a_verdict_leaves_budget_sensitivity_unknown(tmp_path: Path) -> None:
    grid = budget_grid(tmp_path, rising=False)
    [missing] = [p for p in grid.iterdir() if p.is_dir() and all(x in p.name for x in ("budget_scale=3", "method=i1",
                                                                                         "seed=2"))]
    shutil.rmtree(missing)  # budget 3 has 2 seeds of I1: no verdict there
    template = two_rows([{"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "expect": "a > b"}])
    template["grid"]["budget_scale"] = "1,3"
    report = build_report([grid], parse_template(template), plots=False)
    assert not report.table.claims[0].budget_sensitive
    md = report.files["md"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| I1 beats H1 |"))
    assert row.endswith("| inconclusive | – |"), row  # not "no": one budget has no verdict to agree with


def test_a_budget_nobody_has_finished_does_not_lead_the_report(tmp_path: Path) -> None:
    grid = budget_grid(tmp_path, rising=False)
    for run in [p for p in grid.iterdir() if "budget_scale=3" in p.name]:
        shutil.rmtree(run)  # the longer budget has not started
    template = two_rows([{"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "expect": "a > b"}])
    template["grid"]["budget_scale"] = "1,3"
    report = build_report([grid], parse_template(template), plots=False)
    table = report.table
    assert table.done == 6 and [t.done for t in table.others] == [0]
    assert table.claims[0].verdict == INCONCLUSIVE and not table.claims[0].budget_sensitive
    md = report.files["md"].read_text()
    assert f"are at {table.budget}, the longest budget with a done run" in md
    assert f"no run at {table.others[0].budget} has finished yet" in md
    assert "budget sensitivity unknown (no claim has a verdict at two budgets)" in summary_line(table.claims)


def test_flat_cells_are_not_rising(tmp_path: Path) -> None:
    grid = budget_grid(tmp_path, rising=False)
    template = two_rows([{"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "expect": "a > b"}])
    template["grid"]["budget_scale"] = "1,3"
    table = make_table([grid], parse_template(template))
    assert not any(c.rising for c in table.convergence.values())
    assert table.convergence[("i1", "")].gain == pytest.approx(0.1)


# -- runs.csv ------------------------------------------------------------------------------------------------------

def test_report_rebuilds_byte_for_byte_from_runs_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import posereg.report.build as build
    import posereg.report.template as template_module

    grid = budget_grid(tmp_path, rising=True)
    write_run(grid, {"budget_scale": "1", "method": "r1", "seed": "0"}, {"val/auc": 1.0})  # a foreign run
    template = two_rows([{"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "expect": "a > b"}])
    template["grid"]["budget_scale"] = "1,3"
    shipped = tmp_path / "templates"  # as if shipped: runs.csv then names the template, not a path
    shipped.mkdir()
    (shipped / "toy.yaml").write_text(yaml.safe_dump(template))
    monkeypatch.setattr(template_module, "TEMPLATES_DIR", shipped)
    monkeypatch.setattr(build, "TEMPLATES_DIR", shipped)
    write_manifest(grid, "toy", {"budget_scale": ["1", "3"], "method": ["h1", "i1"], "seed": ["0", "1", "2"]},
                   {}, ["x"])
    first = build_report([grid], out_dir=tmp_path / "from_dirs")
    runs_csv = first.files["runs"]
    assert "/" + tmp_path.name not in runs_csv.read_text()  # no absolute path of this machine
    rebuilt_dir = tmp_path / "rebuilt"
    rebuilt_dir.mkdir()
    (rebuilt_dir / "runs.csv").write_bytes(runs_csv.read_bytes())
    assert report_main(["--from", str(rebuilt_dir / "runs.csv")]) == 0
    for name, file in first.files.items():
        assert (rebuilt_dir / file.name).read_bytes() == file.read_bytes(), name
    with open(runs_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and {r["cell"] for r in rows} == {"H1", "I1", ""}
    assert {r["budget_scale"] for r in rows} == {"1", "3"} and rows[0]["commit"] == "a" * 40
    assert rows[0]["dirty"] == "false" and rows[0]["curve:val/auc"].startswith("[[0.0, ")
