"""Committed results stay true to their data: every report under docs/results rebuilds from its runs.csv, and
the generated blocks of README.md and docs/results.md match what the runs.csv files give."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from posereg.errors import DataError
from posereg.paths import REPO_ROOT
from posereg.report.build import build_report
from posereg.report.docs import RESULTS_DIR, committed_reports, default_run_block, update_docs
from posereg.report.manifest import write_manifest
from posereg.report.template import list_templates, parse_template
from test_claims import two_rows, write_run

COMMITTED = sorted(RESULTS_DIR.glob("*/runs.csv"))
IMAGE = re.compile(r'src="data:image/png;base64,[^"]*"')


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("runs_csv", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_committed_report_rebuilds_from_its_runs_csv(runs_csv: Path, tmp_path: Path) -> None:
    """md, csv, tex and runs.csv byte for byte; html byte for byte but for the embedded plots; the plots by name
    and pixel size (their bytes depend on the matplotlib version that draws them)."""
    rebuilt = build_report(None, runs_csv=runs_csv, out_dir=tmp_path).files
    committed = {p.name for p in runs_csv.parent.iterdir() if p.is_file()}
    assert {f.name for f in rebuilt.values()} == committed
    for file in rebuilt.values():
        old = runs_csv.parent / file.name
        if file.suffix == ".png":
            assert _png_size(file.read_bytes()) == _png_size(old.read_bytes()), file.name
        elif file.suffix == ".html":
            assert IMAGE.sub("", file.read_text()) == IMAGE.sub("", old.read_text())
        else:
            assert file.read_bytes() == old.read_bytes(), f"{runs_csv.parent.name}/{file.name} differs"


def test_readme_and_results_md_match_the_committed_data() -> None:
    assert update_docs(check=True) == [], "run `posereg-report --update-docs` and commit"


def test_committed_reports_name_no_machine_path() -> None:
    for folder in {p.parent for p in COMMITTED}:
        for file in folder.iterdir():
            if file.suffix in (".md", ".csv", ".tex", ".html"):
                assert not re.search(r"/(work|tmp|home|root|mnt)/", file.read_text()), file


def test_generated_blocks_follow_the_runs(tmp_path: Path) -> None:
    grid = tmp_path / "runs" / "toy"
    for seed, (h, i) in enumerate([(50.0, 55.1), (52.0, 56.9), (54.0, 59.0)]):
        write_run(grid, {"method": "h1", "seed": str(seed)}, {"val/auc": h})
        write_run(grid, {"method": "i1", "seed": str(seed)}, {"val/auc": i})
    template = tmp_path / "toy.yaml"
    import yaml

    template.write_text(yaml.safe_dump(two_rows([{"label": "I1 beats H1", "a": "I1", "b": "H1", "metric": "val/auc",
                                                  "expect": "a > b"}])))
    write_manifest(grid, str(template), {"method": ["h1", "i1"], "seed": ["0", "1", "2"]}, {}, ["x"])
    results = tmp_path / "docs" / "results"
    build_report([grid], out_dir=results / "toy", plots=False)
    readme, md = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text("intro\n<!-- generated: claims-summary -->\nold\n<!-- end: claims-summary -->\noutro\n"
                      "<!-- generated: default-run -->\n<!-- end: default-run -->\n")
    md.write_text("# r\n<!-- generated: status -->\n<!-- end: status -->\n"
                  "<!-- generated: results toy -->\n<!-- end: results toy -->\n")
    assert update_docs(check=True, root=results, readme_path=readme, results_path=md) == [readme, md]
    assert update_docs(root=results, readme_path=readme, results_path=md) == [readme, md]
    assert update_docs(check=True, root=results, readme_path=readme, results_path=md) == []
    text = readme.read_text()
    assert text.startswith("intro\n") and "outro\n" in text and "old" not in text
    assert "\n".join(default_run_block()) in text  # the default run's sentence, from the committed record
    assert "| toy | 20 steps | 1 / 0 / 0 | – | 0 / 0 / 0; 0 | – | – | [report](docs/results/toy/report.md) |" in text
    assert "| I1 beats H1 [I1 − H1] | AUC | +5.0 ± 0.2 | 3 | paired t | – | reproduced | – |" in md.read_text()
    status = md.read_text()
    shipped = "| `integral_table4` | Integral regression, Table 4: multi-stage networks, per stage (2D) | 0 / 12 |"
    assert shipped in status
    toy_row = next(line for line in status.splitlines() if line.startswith("| `toy` |"))
    assert "| 6 / 6 | 20 | 0, 1, 2 |" in toy_row and toy_row.endswith("| [report](results/toy/report.md) |")
    (reports,) = committed_reports(results)
    assert reports.name == "toy" and reports.table.template.command == "posereg-sweep toy"
    md.write_text("# only the status\n<!-- generated: status -->\n<!-- end: status -->\n")
    with pytest.raises(DataError, match="has no block `<!-- generated: results toy -->`"):
        update_docs(root=results, readme_path=readme, results_path=md)
    assert parse_template(two_rows([])).command == "posereg-sweep toy"


def test_every_claim_template_has_a_script_that_runs_it():
    """scripts/paper_grids.sh runs every template by default but the chained ones, which have a script each."""
    script = (REPO_ROOT / "scripts" / "paper_grids.sh").read_text()
    listed = set(re.search(r"\|\| templates=\(([^)]*)\)", script).group(1).split())
    chained = {"deepskeleton_table": "deepskeleton_grid.sh", "deeppose_cascade": "deeppose_grid.sh"}
    assert listed | set(chained) == set(list_templates()) and not listed & set(chained)
    assert all((REPO_ROOT / "scripts" / name).is_file() and name in script for name in chained.values())
