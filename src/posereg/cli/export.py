"""posereg-export: write a run's network as ONNX or TorchScript (image batch -> joints in crop pixels).

    posereg-export run=<run dir> format=onnx|torchscript [out=<file>] [opset=17] [ckpt=best|last|<file>]
        [cut=<output>] [flip_test=false] [key=value overrides of the run's config]

The file takes normalised crops (B,3,H,W) and returns joints_crop_px (B,J,2), for 3D models z_rel_mm
(B,J), coords_unit (B,J,2|3) and, for networks with joint confidences, joint_conf (B,J); see
posereg.inference.export. A JSON beside it (<out>.json) describes the input and outputs. Default out:
<run dir>/export/<cut output>.onnx (or .pt). flip_test=true bakes flip averaging in (two passes).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from posereg.cli.common import exit_2_on_bad_input, resolve_auto_cut, split_own_args
from posereg.console import console
from posereg.data.datamodule import data_info
from posereg.errors import ConfigError, require_int
from posereg.inference import export as E
from posereg.inference.predictor import load_module
from posereg.jsonio import write_json
from posereg.runs.open import open_run

USAGE = ("posereg-export run=<run dir> format=onnx|torchscript [out=<file>] [opset=17] [ckpt=best|last|<file>] "
         "[cut=<output>] [flip_test=false] [key=value ...]")
OWN = {"run": None, "format": "onnx", "out": None, "opset": "17", "ckpt": "best", "flip_test": "false"}
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def export_run(opts: dict[str, Any], overrides: list[str]) -> Path:
    """Load the run's module, export it, check it against PyTorch; returns the written file."""
    fmt = opts["format"]
    if fmt not in E.FORMATS:
        raise ConfigError(f"format={fmt}: use one of {', '.join(E.FORMATS)}")
    if opts["flip_test"] not in ("true", "false"):
        raise ConfigError(f"flip_test={opts['flip_test']}: use true or false")
    opset = require_int(opts["opset"], "opset", 7)
    opened = open_run(opts["run"], opts["ckpt"], overrides)
    cfg, checkpoint, run = opened.cfg, opened.checkpoint, opened.run
    info = data_info(cfg)
    resolve_auto_cut(cfg, info)
    module = load_module(opened, "cpu")
    cut = module.output_names[module.cut_index]
    out = Path(opts["out"]) if opts["out"] else run.path / "export" / f"{cut}{SUFFIX[fmt]}"
    wrapper = E.ExportedPose(module, flip_test=opts["flip_test"] == "true")
    if fmt == "onnx":
        E.export_onnx(wrapper, out, opset)
    else:
        E.export_torchscript(wrapper, out)
    diff = E.max_difference(wrapper, out, fmt)
    write_json(out.with_name(out.name + ".json"), {**E.description(wrapper, info.joint_set, fmt), "run": str(run.path),
                                                   "checkpoint": str(checkpoint), "cut": cut, "max_abs_diff": diff})
    console.print(f"wrote {out} ({fmt}, cut {cut}, outputs {', '.join(wrapper.output_names)}); max |exported - "
                  f"PyTorch| on a random batch: " + ", ".join(f"{k} {v:.2g}" for k, v in diff.items()))
    return out


def parse_args(argv: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """Split posereg-export's own settings from the config overrides (cut= is a config override)."""
    parser = argparse.ArgumentParser(prog="posereg-export", usage=USAGE, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="run=<dir> format=onnx|torchscript and key=value overrides")
    args = parser.parse_args(argv)
    try:
        return split_own_args(args.items, OWN, ("run",))
    except ConfigError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-export)."""
    opts, overrides = parse_args(argv)
    exit_2_on_bad_input(export_run, opts, overrides)


if __name__ == "__main__":
    main()
