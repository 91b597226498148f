"""Paper claims on hand-made run directories: verdicts with t intervals, groups, differences of differences,
paper numbers, mixed git commits, and the shipped templates' claims naming cells they produce."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from scipy import stats

from posereg.errors import ConfigError
from posereg.report.build import build_report, make_table
from posereg.report.claims import (
    CONTRADICTED,
    FEW_SEEDS,
    INCONCLUSIVE,
    NOT_PRODUCED,
    REPRODUCED,
    group_verdict,
    summary_line,
)
from posereg.report.manifest import write_manifest
from posereg.report.stats import PAIRED, WELCH
from posereg.report.template import list_templates, load_template, parse_template

T975_DF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)


def write_run(grid: Path, overrides: dict[str, str], values: dict[str, float], status: str = "done",
              commit: str = "a" * 40, section: str = "final") -> Path:
    """A run directory with status.json, metrics.json (values in `section`, a setup) and .hydra/overrides.yaml."""
    key = ",".join(f"{k}={v}" for k, v in overrides.items())
    run = grid / key
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()]))
    (run / "status.json").write_text(json.dumps({
        "status": status, "run_key": key, "attempts": 1, "git_commit": commit, "experiment": grid.name,
        "started_at": "2024-01-01T10:00:00+00:00", "ended_at": "2024-01-01T10:30:00+00:00", "duration_s": 1800.0,
    }))
    if status == "done":
        setup = {"data": ["synth"], "joint_set": "mpii16", "backbone": "resnet18", "input_size": 64,
                 "batch_size": 32, "epochs": 1, "steps": 20, "seed": int(overrides.get("seed", 0)),
                 "device": "CPU x1", "precision": "32-true"}
        sections = {"final": {}, "best": {}, "test": {}}
        sections[section] = dict(values)
        (run / "metrics.json").write_text(json.dumps({**sections, "extras": {}, "setup": setup}))
    return run


def two_rows(claims: list[dict], columns: dict | None = None, seeds: str = "0,1,2") -> dict:
    """A template: rows method h1/i1 (H1/I1), metric val/auc (and a lower-is-better MPJPE), the given claims."""
    grid = {"method": "h1,i1", "seed": seeds}
    table = {"rows": {"axis": "method", "labels": {"h1": "H1", "i1": "I1"}},
             "metrics": [{"name": "val/auc", "label": "AUC"},
                         {"name": "val/mpjpe", "label": "MPJPE", "higher_is_better": False}],
             "claims": claims}
    if columns:
        grid[columns["axis"]] = ",".join(columns["labels"])
        table["columns"] = columns
    return {"name": "toy", "grid": grid, "table": table}


I1_BEATS_H1 = {"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc", "expect": "a > b"}


def grid_with(tmp_path: Path, h1: list[float], i1: list[float], h1_seeds: list[int] | None = None,
              i1_seeds: list[int] | None = None) -> Path:
    grid = tmp_path / "toy"
    for method, values, seeds in (("h1", h1, h1_seeds), ("i1", i1, i1_seeds)):
        for seed, v in zip(seeds or range(len(values)), values, strict=True):
            write_run(grid, {"method": method, "seed": str(seed)}, {"val/auc": v})
    return grid


def only_pair(table):
    ((pair,),) = [c.pairs for c in table.claims]
    return pair


def test_clear_effect_is_reproduced_with_a_paired_interval(tmp_path: Path) -> None:
    grid = grid_with(tmp_path, h1=[50.0, 52.0, 54.0], i1=[55.1, 56.9, 59.0])  # per-seed I1 − H1: 5.1, 4.9, 5.0
    table = make_table([grid], parse_template(two_rows([I1_BEATS_H1])))
    pair = only_pair(table)
    half = T975_DF2 * 0.1 / math.sqrt(3)  # sd of (5.1, 4.9, 5.0) is 0.1
    assert pair.test == PAIRED and pair.seeds_text == "3"
    assert pair.ours == pytest.approx(5.0)
    assert (pair.low, pair.high) == (pytest.approx(5.0 - half), pytest.approx(5.0 + half))
    assert pair.verdict == REPRODUCED and table.claims[0].verdict == REPRODUCED
    md = build_report([grid], parse_template(two_rows([I1_BEATS_H1])), plots=False).files["md"].read_text()
    assert "| I1 beats H1 [I1 − H1] | AUC | +5.0 ± 0.2 | 3 | paired t | – | reproduced |" in md
    assert "- Claims: direction: 1 of 1 claim reproduced, 0 inconclusive, 0 contradicted." in md


def test_reversed_effect_is_contradicted(tmp_path: Path) -> None:
    grid = grid_with(tmp_path, h1=[55.1, 56.9, 59.0], i1=[50.0, 52.0, 54.0])
    pair = only_pair(make_table([grid], parse_template(two_rows([I1_BEATS_H1]))))
    assert pair.ours == pytest.approx(-5.0) and pair.high < 0
    assert pair.verdict == CONTRADICTED


def test_overlapping_values_are_inconclusive(tmp_path: Path) -> None:
    grid = grid_with(tmp_path, h1=[50.0, 52.0, 54.0], i1=[52.0, 51.0, 55.0])  # per-seed: +2, -1, +1
    pair = only_pair(make_table([grid], parse_template(two_rows([I1_BEATS_H1]))))
    sd = math.sqrt(((2 - 2 / 3) ** 2 + (-1 - 2 / 3) ** 2 + (1 - 2 / 3) ** 2) / 2)
    assert pair.ours == pytest.approx(2 / 3)
    assert pair.high - pair.ours == pytest.approx(T975_DF2 * sd / math.sqrt(3))
    assert pair.low < 0 < pair.high and pair.verdict == INCONCLUSIVE


def test_fewer_than_three_seeds_give_no_verdict(tmp_path: Path) -> None:
    grid = grid_with(tmp_path, h1=[50.0, 52.0], i1=[60.0, 62.0])
    table = make_table([grid], parse_template(two_rows([I1_BEATS_H1], seeds="0,1")))
    pair = only_pair(table)
    assert pair.ours == pytest.approx(10.0) and pair.low is None and pair.verdict == FEW_SEEDS
    assert summary_line(table.claims) == ("direction: 0 of 1 claim reproduced, 0 inconclusive, 0 contradicted, "
                                          "1 without a verdict (fewer than 3 seeds)")


def test_unpaired_seeds_use_welch(tmp_path: Path) -> None:
    h1, i1 = [50.0, 52.0, 51.0], [58.0, 59.0, 63.0, 61.0]
    grid = grid_with(tmp_path, h1=h1, i1=i1, h1_seeds=[0, 1, 2], i1_seeds=[0, 1, 2, 3])
    template = two_rows([I1_BEATS_H1], seeds="0,1,2,3")
    pair = only_pair(make_table([grid], parse_template(template)))
    ci = stats.ttest_ind(i1, h1, equal_var=False).confidence_interval(0.95)
    assert pair.test == WELCH and pair.seeds_text == "4/3"
    assert pair.ours == pytest.approx(sum(i1) / 4 - sum(h1) / 3)
    assert (pair.low, pair.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert pair.verdict == REPRODUCED


def test_lower_is_better_and_reduction_pct(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    for seed, (h, i) in enumerate([(100.0, 80.0), (110.0, 86.0), (90.0, 74.0)]):  # I1 − H1: -20, -24, -16
        write_run(grid, {"method": "h1", "seed": str(seed)}, {"val/mpjpe": h})
        write_run(grid, {"method": "i1", "seed": str(seed)}, {"val/mpjpe": i})
    claim = {"label": "I1 improves H1", "a": "I1", "b": "H1", "metric": "val/mpjpe", "kind": "reduction_pct",
             "paper": 13.2}
    pair = only_pair(make_table([grid], parse_template(two_rows([claim]))))
    assert pair.pair.expect == -1  # a positive reduction means a < b
    ratios = [20.0, 100 * 24 / 110, 100 * 16 / 90]  # per-seed 100 (H1 - I1) / H1: the denominator varies too
    mean, sd = sum(ratios) / 3, math.sqrt(sum((r - sum(ratios) / 3) ** 2 for r in ratios) / 2)
    half = T975_DF2 * sd / math.sqrt(3)
    assert pair.test == "paired t of per-seed ratios"
    assert pair.ours == pytest.approx(mean)
    assert (pair.low, pair.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert pair.verdict == REPRODUCED and pair.magnitude == "larger than the paper"  # 13.2 < [14.8, 24.9]
    better = {"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/mpjpe", "expect": "a better"}
    assert only_pair(make_table([grid], parse_template(two_rows([better])))).verdict == REPRODUCED


HALVING = {"axis": "size", "labels": {"big": "(a)", "small": "(b)"}}


def test_difference_of_differences(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    auc = {("h1", "big"): [50.0, 52.0, 51.0], ("h1", "small"): [44.0, 47.0, 45.0],   # H1 drops 6, 5, 6
           ("i1", "big"): [60.0, 61.0, 62.0], ("i1", "small"): [59.0, 60.5, 61.0]}  # I1 drops 1, 0.5, 1
    for (method, size), values in auc.items():
        for seed, v in enumerate(values):
            write_run(grid, {"method": method, "size": size, "seed": str(seed)}, {"val/auc": v})
    claim = {"label": "halving costs H1 more than I1", "metric": "val/auc", "expect": "a > b", "paper": 4.2,
             "a": {"row": "H1", "col": "(a)", "minus": {"row": "H1", "col": "(b)"}},
             "b": {"row": "I1", "col": "(a)", "minus": {"row": "I1", "col": "(b)"}}}
    table = make_table([grid], parse_template(two_rows([claim], columns=HALVING)))
    pair = only_pair(table)
    per_seed = [5.0, 4.5, 5.0]
    sd = stats.tstd(per_seed)
    assert pair.test == PAIRED and pair.ours == pytest.approx(sum(per_seed) / 3)
    assert pair.high - pair.ours == pytest.approx(T975_DF2 * sd / math.sqrt(3))
    assert pair.verdict == REPRODUCED and pair.pair.paper == 4.2
    md = build_report([grid], parse_template(two_rows([claim], columns=HALVING)), plots=False).files["md"]
    assert ("| halving costs H1 more than I1 [(H1 (a) − H1 (b)) − (I1 (a) − I1 (b))] | AUC | +4.8 ± 0.7 | 3 "
            "| paired t | +4.2 | reproduced |") in md.read_text()


def test_group_claim_over_columns(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    auc = {("h1", "big"): [50.0, 52.0, 51.0], ("i1", "big"): [60.0, 62.5, 61.0],   # clear +10
           ("h1", "small"): [50.0, 52.0, 51.0], ("i1", "small"): [52.0, 51.0, 51.5]}  # +2, -1, +0.5
    for (method, size), values in auc.items():
        for seed, v in enumerate(values):
            write_run(grid, {"method": method, "size": size, "seed": str(seed)}, {"val/auc": v})
    claim = {"label": "I1 beats H1 at every size", "a": "I1", "b": "H1", "each": "columns", "metric": "val/auc",
             "expect": "a > b"}
    table = make_table([grid], parse_template(two_rows([claim], columns=HALVING)))
    (result,) = table.claims
    assert [p.pair.label for p in result.pairs] == ["(a)", "(b)"]
    assert [p.verdict for p in result.pairs] == [REPRODUCED, INCONCLUSIVE]
    assert result.verdict == INCONCLUSIVE
    md = build_report([grid], parse_template(two_rows([claim], columns=HALVING)), plots=False).files["md"]
    text = md.read_text()
    assert "| I1 beats H1 at every size | AUC | all of 2 pairs |  |  |  | inconclusive |" in text
    assert "| ↳ (a): I1 (a) − H1 (a) | AUC | +10.2 ± 0.7 | 3 | paired t | – | reproduced |" in text
    assert group_verdict([REPRODUCED, REPRODUCED, NOT_PRODUCED]) == REPRODUCED
    assert group_verdict([REPRODUCED, CONTRADICTED, INCONCLUSIVE]) == CONTRADICTED
    assert group_verdict([REPRODUCED, FEW_SEEDS]) == FEW_SEEDS
    assert group_verdict([NOT_PRODUCED]) == NOT_PRODUCED


def test_outputs_a_run_lacks_are_not_produced(tmp_path: Path) -> None:
    raw = {"name": "stages", "grid": {"method": "ms_h1,ms_i1", "seed": "0,1,2"},
           "table": {"rows": {"axis": "method", "labels": {"ms_h1": "MS-H1", "ms_i1": "MS-I1"}},
                     "columns": {"outputs": {"stage1": "stage 1", "stage2": "stage 2"}},
                     "metric_name": "{metric}@{col}", "metrics": [{"name": "val/auc", "label": "AUC"}],
                     "claims": [{"label": "I1 beats H1 at every stage", "a": "MS-I1", "b": "MS-H1",
                                 "each": "columns", "metric": "val/auc", "expect": "a > b"},
                                {"label": "MS-I1 stage 1 beats MS-H1 stage 2", "a": {"row": "MS-I1", "col": "stage 1"},
                                 "b": {"row": "MS-H1", "col": "stage 2"}, "metric": "val/auc", "expect": "a > b"}]}}
    grid = tmp_path / "stages"
    for seed in range(3):  # one stage only: stage 2 is not an output of these runs
        write_run(grid, {"method": "ms_h1", "seed": str(seed)}, {"val/auc@stage1": 50.0 + seed})
        write_run(grid, {"method": "ms_i1", "seed": str(seed)}, {"val/auc@stage1": 55.0 + seed * 1.1})
    table = make_table([grid], parse_template(raw))
    every, cross = table.claims
    assert [p.verdict for p in every.pairs] == [REPRODUCED, NOT_PRODUCED] and every.verdict == REPRODUCED
    assert cross.verdict == NOT_PRODUCED
    assert summary_line(table.claims).endswith("1 not produced by these runs")
    # the group line says that its verdict covers only the pairs the runs produce
    assert every.scope == "all of 1 produced pairs (1 of 2 not produced)"
    md = build_report([grid], parse_template(raw), plots=False).files["md"].read_text()
    assert "| I1 beats H1 at every stage | AUC | all of 1 produced pairs (1 of 2 not produced) |" in md


def test_paper_numbers_shown_from_refs_and_paper_cells(tmp_path: Path) -> None:
    grid = grid_with(tmp_path, h1=[50.0, 52.0, 54.0], i1=[55.1, 56.9, 59.0])
    raw = two_rows([{"label": "stated by ref", "a": "I1", "b": "H1", "metric": "val/auc",
                     "paper": "ref:integral_human_pose_regression/h36m/p1_pa_mpjpe"},
                    {"label": "from the paper's cells", "a": "I1", "b": "H1", "metric": "val/auc"}])
    raw["table"]["paper"] = {"H1": {"val/auc": 46.3}, "I1": {"val/auc": 57.7}}
    table = make_table([grid], parse_template(raw))
    ref, cells = (only for only in table.claims)
    assert ref.pairs[0].pair.paper == 40.6 and ref.pairs[0].pair.paper_source == "stated"
    assert cells.pairs[0].pair.paper == pytest.approx(11.4) and cells.pairs[0].pair.paper_source == "paper's cells"
    assert cells.pairs[0].pair.expect == 1  # from the paper's sign
    md = build_report([grid], parse_template(raw), plots=False).files["md"].read_text()
    assert "| from the paper's cells [I1 − H1] | AUC | +5.0 ± 0.2 | 3 | paired t | +11.4 | reproduced |" in md
    assert "| stated by ref [I1 − H1] | AUC | +5.0 ± 0.2 | 3 | paired t | +40.6 | reproduced |" in md


def test_mixed_commits_are_flagged(tmp_path: Path) -> None:
    grid = tmp_path / "toy"
    old, new = "1" * 40, "2" * 40 + "+dirty"
    for seed, (h, i) in enumerate([(50.0, 55.1), (52.0, 56.9), (54.0, 59.0)]):
        write_run(grid, {"method": "h1", "seed": str(seed)}, {"val/auc": h}, commit=old)
        write_run(grid, {"method": "i1", "seed": str(seed)}, {"val/auc": i}, commit=new if seed == 2 else old)
    write_manifest(grid, "toy", {"method": ["h1", "i1"], "seed": ["0", "1", "2"]}, {}, ["x"])
    template = parse_template(two_rows([I1_BEATS_H1]))
    table = make_table([grid], template)
    assert table.commit_counts() == {old: 5, new: 1}
    assert not table.is_marked(table.cells[("h1", "", "val/auc")])
    assert table.is_marked(table.cells[("i1", "", "val/auc")])
    md = build_report([grid], template, plots=False).files["md"].read_text()
    assert ("- WARNING: the done runs mix 2 git commits: 1111111 (5), 2222222+dirty (1); cells marked † hold runs "
            "from a commit other than 1111111 (the most common) or from several. WARNING: 1 of 6 done runs ran on "
            "uncommitted code (+dirty): the repository does not hold the code that produced them; cells marked ‡.")\
        in md
    assert "| H1 | 52.0 ± 2.0 | – (0/3) |" not in md
    assert "| I1 | 57.0 ± 2.0 † ‡ | – |" in md
    assert "| I1 | 1111111 (2), 2222222+dirty (1) | CPU x1 (3) | 32-true (3) | 3 |" in md  # provenance per cell
    assert "| I1 beats H1 [I1 − H1] † | AUC | +5.0 ± 0.2 | 3 | paired t | – | reproduced |" in md


@pytest.mark.parametrize("bad, match", [
    ({"a": "I9", "b": "H1", "metric": "val/auc", "expect": "a > b"}, "row 'I9' is not a row"),
    ({"a": "I1", "b": "H1", "metric": "val/pck", "expect": "a > b"}, "metric 'val/pck' is not in table.metrics"),
    ({"a": {"row": "I1", "col": "(z)"}, "b": {"row": "H1", "col": "(a)"}, "metric": "val/auc", "expect": "a > b"},
     "column '\\(z\\)' is not a column"),
    ({"a": "I1", "b": "H1", "metric": "val/auc"}, "give `expect`"),
    ({"a": "I1", "b": "H1", "metric": "val/auc", "expect": "a >> b"}, "expect must be one of"),
    ({"a": "I1", "b": "H1", "metric": "val/auc", "paper": "ref:integral_human_pose_regression/nope"}, "no key"),
])
def test_claims_naming_what_the_template_lacks_fail_to_load(bad: dict, match: str) -> None:
    columns = HALVING if isinstance(bad["a"], dict) else None
    with pytest.raises(ConfigError, match=f"claim 'wrong'.*{match}"):
        parse_template(two_rows([{"label": "wrong", **bad}], columns=columns))
    legacy = two_rows([])
    legacy["table"]["comparisons"] = []
    with pytest.raises(ConfigError, match="table.comparisons is now table.claims"):
        parse_template(legacy)


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("name", list_templates())
def test_shipped_template_claims_name_cells_the_template_produces(name: str, real: bool) -> None:
    if real and not load_template(name).real:
        return
    t = load_template(name, real=real)  # a claim naming an unknown row, column or metric fails here
    assert t.claims, f"{name} states no claim"
    labels = {(t.rows.label(r), t.columns.label(c) if t.columns else "") for r in t.row_keys() for c in t.col_keys()}
    for claim in t.claims:
        for pair in claim.pairs:
            assert {(c.row, c.col) for _, c in pair.cells()} <= labels, claim.label
            assert pair.metric in {m.name for m in t.metrics}
            assert pair.expect in (1, -1)
