"""Exporting an opened run's network, the recipe of posereg-export and `posereg.export`: the file (ONNX or
TorchScript), its JSON description, a check against PyTorch, and a model card (MODEL.md) beside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from posereg.console import console
from posereg.data.datamodule import data_info
from posereg.inference import export as E
from posereg.inference.boxes import box_padding
from posereg.inference.predictor import load_module
from posereg.jsonio import DamagedFileError, atomic_write_bytes, write_json
from posereg.recipes.common import resolve_auto_cut
from posereg.runs.card import model_card
from posereg.runs.open import OpenedRun


def _or_none(read: Callable[[], Any], what: str) -> Any:
    """What `read` returns, or None with a line when the file is damaged: the exported network does not need it."""
    try:
        return read()
    except DamagedFileError as err:
        console.print(f"[yellow]{err}[/yellow]: MODEL.md leaves out the run's {what}")
        return None


def export_opened(opened: OpenedRun, fmt: str, out: Path | None, suffix: str, opset: int, flip_test: bool) -> Path:
    """Load the module, export it (default: <run>/export/<cut output><suffix>), check it against PyTorch, write
    its description and card; returns the written file."""
    cfg, checkpoint, run = opened.cfg, opened.checkpoint, opened.run
    info = data_info(cfg)
    resolve_auto_cut(cfg, info)
    module = load_module(opened, "cpu")
    cut = module.output_names[module.cut_index]
    out = Path(out) if out else run.path / "export" / f"{cut}{suffix}"
    wrapper = E.ExportedPose(module, flip_test=flip_test)
    if fmt == "onnx":
        E.export_onnx(wrapper, out, opset)
    else:
        E.export_torchscript(wrapper, out)
    diff = E.max_difference(wrapper, out, fmt)
    described = E.description(wrapper, info.joint_set, fmt)
    write_json(out.with_name(out.name + ".json"), {**described, "run": str(run.path), "checkpoint": str(checkpoint),
                                                   "cut": cut, "max_abs_diff": diff})
    card = model_card(run.path, cfg, _or_none(run.metrics, "metrics"), _or_none(run.read_status, "commit") or {},
                      {**described, "box_padding": box_padding(cfg)}, exported=out.resolve())
    atomic_write_bytes(out.parent / "MODEL.md", card.encode())
    console.print(f"wrote {out} ({fmt}, cut {cut}, outputs {', '.join(wrapper.output_names)}) and its MODEL.md; "
                  "max |exported - PyTorch| on a random batch: " + ", ".join(f"{k} {v:.2g}" for k, v in diff.items()))
    return out
