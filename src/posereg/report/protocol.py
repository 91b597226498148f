"""Whether runs follow the paper's protocol: their data sources vs the template's --real datasets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posereg.paths import CONF_DIR
from posereg.report.collect import RunRecord
from posereg.report.template import Template, split_values

DATASET_NAMES = {"mpii": "MPII", "h36m": "Human3.6M", "coco": "COCO", "lsp": "LSP",
                 "mpi_inf_3dhp": "MPI-INF-3DHP", "synth": "SynthPose", "synth2d": "SynthPose 2D",
                 "synth3d": "SynthPose 3D"}


def dataset_name(source: str) -> str:
    """Display name of a data source key (`h36m` -> `Human3.6M`)."""
    return DATASET_NAMES.get(source, source)


@dataclass
class Protocol:
    """The runs' data sources and the paper's (the template's real-mode datasets)."""

    ours: list[str] = field(default_factory=list)
    paper: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool | None:
        """True when every run used only the paper's datasets; None when either side is unknown."""
        if not self.ours or not self.paper:
            return None
        return set(self.ours) <= set(self.paper)

    @property
    def paper_data(self) -> str:
        """`MPII` or `Human3.6M, MPII`."""
        return ", ".join(dataset_name(s) for s in self.paper)

    def paper_header(self) -> str:
        """Column header suffix for paper numbers: `paper`, or `paper (MPII)` when the protocol differs."""
        return "paper" if self.matches is not False else f"paper ({self.paper_data})"

    def line(self) -> str:
        """One header line saying whether paper numbers are comparable."""
        ours = ", ".join(dataset_name(s) for s in self.ours)
        if self.matches is None:
            why = "the template has no real-mode datasets" if not self.paper else "the runs record no data sources"
            return f"Protocol: not checked ({why}); Δ = ours − paper."
        if self.matches:
            return f"Protocol: the runs use the paper's data ({ours}); Δ = ours − paper."
        return (f"Protocol: the runs use {ours}, the paper {self.paper_data}: paper numbers are shown for "
                "reference only, without Δ.")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}


def preset_data(name: str, depth: int = 0) -> str | None:
    """The data config a preset (conf/experiment/<name>.yaml) selects, following the presets it includes."""
    found = None
    for entry in _read(CONF_DIR / "experiment" / f"{name}.yaml").get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_" and depth < 5:
            found = preset_data(entry.split("@")[0], depth + 1) or found
        elif isinstance(entry, dict):
            for key, value in entry.items():
                if str(key).split()[-1].strip("/") == "data":
                    found = str(value)
    return found


def data_sources(data: str) -> list[str]:
    """Source keys of a data config (conf/data/<name>.yaml `sources`), as metrics.json setup.data lists them."""
    return [str(k) for k in _read(CONF_DIR / "data" / f"{data}.yaml").get("sources") or {}] or [data]


def real_sources(template: Template) -> list[str]:
    """Data sources of the template's --real grid (its `real:` data axis, else its preset's data)."""
    if not template.real:
        return []
    names = split_values(template.real["data"]) if "data" in template.real else []
    if not names and template.real.get("experiment"):
        names = [n for n in [preset_data(template.real["experiment"])] if n]
    out: list[str] = []
    for name in names:
        out += [s for s in data_sources(name) if s not in out]
    return out


def run_sources(records: list[RunRecord]) -> list[str]:
    """Data sources the done runs trained on (metrics.json setup.data), in first-seen order."""
    out: list[str] = []
    for r in records:
        data = r.setup.get("data") if r.status == "done" else None
        for s in [data] if isinstance(data, str) else data or []:
            if str(s) not in out:
                out.append(str(s))
    return out


def check_protocol(template: Template, records: list[RunRecord]) -> Protocol:
    """The runs' data sources against the paper's."""
    return Protocol(ours=run_sources(records), paper=real_sources(template))
