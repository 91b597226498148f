"""posereg-export: write a run's network as ONNX or TorchScript (image batch -> joints in crop pixels).

    posereg-export run=<run dir> format=onnx|torchscript [out=<file>] [opset=17] [ckpt=best|last|<file>]
        [cut=<output>] [flip_test=false] [key=value overrides of the run's config]

The file takes normalised crops (B,3,H,W) and returns joints_crop_px (B,J,2), for 3D models z_rel_mm
(B,J), coords_unit (B,J,2|3) and, for networks with joint confidences, joint_conf (B,J); see
posereg.inference.export. A JSON beside it (<out>.json) describes the input and outputs, and a model card
(MODEL.md) says what the network is and how to run it with onnxruntime. Default out:
<run dir>/export/<cut output>.onnx (or .pt). flip_test=true bakes flip averaging in (two passes).
`posereg.export` in Python does the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from posereg.api.export import export
from posereg.cli.common import exit_2_on_bad_input, flag, split_own_args
from posereg.errors import ConfigError

USAGE = ("posereg-export run=<run dir> format=onnx|torchscript [out=<file>] [opset=17] [ckpt=best|last|<file>] "
         "[cut=<output>] [flip_test=false] [key=value ...]")
OWN = {"run": None, "format": "onnx", "out": None, "opset": "17", "ckpt": "best", "flip_test": "false"}


def export_run(opts: dict[str, Any], overrides: list[str]) -> Path:
    """The command's settings handed to `posereg.export`; returns the written file."""
    return export(opts["run"], opts["format"], opts["out"], opts["opset"], opts["ckpt"],
                  flag(opts["flip_test"], "flip_test"), overrides)


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
