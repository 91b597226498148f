"""Exporting a run's network from Python, as posereg-export does.

    path = posereg.export("runs/default/seed=0", format="onnx")   # <run>/export/<output>.onnx, .json, MODEL.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posereg.api.evaluate import settings_overrides
from posereg.errors import ConfigError, require_int
from posereg.runs.open import open_run

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}  # the formats and their files


def export(run: str | Path, format: str = "onnx", out: str | Path | None = None, opset: int = 17,  # noqa: A002
           ckpt: str = "best", flip_test: bool = False, overrides: list[str] | tuple[str, ...] = (),
           **settings: Any) -> Path:
    """Write a run's network as ONNX or TorchScript (image batch -> joints in crop pixels), its JSON description
    and a model card beside it; `flip_test` bakes flip averaging in. Returns the file."""
    if format not in SUFFIX:
        raise ConfigError(f"format={format}: use one of {', '.join(SUFFIX)}")
    opset = require_int(opset, "opset", 7)
    opened = open_run(run, ckpt, [*overrides, *settings_overrides(settings)])  # the run and the overrides, checked
    # the one deferred import: torch, Lightning and timm load only once the run and its settings are good
    from posereg.recipes.export import export_opened

    return export_opened(opened, format, Path(out) if out else None, SUFFIX[format], opset, bool(flip_test))
