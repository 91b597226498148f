"""posereg-predict: run a trained run on images, folders, globs or videos; write overlays and JSON results.

    posereg-predict run=<run dir> input=<image | folder | video | glob> [out=<dir>] [boxes=<detections json>]
        [box=whole|center] [box_score_thr=0] [camera=fx,fy,cx,cy] [device=cpu|cuda] [batch_size=32]
        [ckpt=best|last|<file>] [overlays=true|false] [max_pixels=50000000] [key=value overrides of the run's config]

Person boxes: the whole image (default), its largest centred square (box=center), or COCO detections
(boxes=, [{image_id | file_name, bbox: [x,y,w,h], score}], kept at score >= box_score_thr; image_id is
matched against the file stem as an int, or a video's frame index). Detection boxes are widened to a
square and padded by the run's box_padding (1.25 by default); the whole image and its centre square are
not padded. device defaults to cuda when there is one; flip_test follows the run's config (override it
with flip_test=false). Outputs under out= (default: beside the run, <run dir>/predictions/<input name>):
overlays/, predictions.json, for a video its overlay mp4 and videos/<stem>.json, and coco_results.json when
the run's joint set maps into COCO-17 (score = box score x mean joint confidence, 1 without either);
formats: posereg.inference.writer. Images and videos whose header claims more than max_pixels pixels are
skipped before decoding; unreadable and skipped inputs are listed at the end; the exit code is 0 when at least
one input was read, 2 when none was (or for a setting error). In Python: `posereg.load(run).predict(...)`.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import re
from pathlib import Path
from typing import Any

from posereg.api.model import load_opened
from posereg.cli.common import exit_2_on_bad_input, flag, split_own_args
from posereg.console import console
from posereg.errors import ConfigError, DataError, require_int
from posereg.inference.boxes import box_padding, box_source, read_boxes
from posereg.inference.inputs import list_inputs, parse_camera
from posereg.runs.open import open_run

USAGE = ("posereg-predict run=<run dir> input=<image|folder|video|glob> [out=<dir>] [boxes=<json>] "
         "[box=whole|center] [box_score_thr=0] [camera=fx,fy,cx,cy] [device=cpu|cuda] [batch_size=32] "
         "[ckpt=best|last|<file>] [overlays=true|false] [max_pixels=50000000] [key=value ...]")
OWN = {"run": None, "input": None, "out": None, "boxes": None, "box": "whole", "box_score_thr": "0",
       "camera": None, "device": None, "batch_size": "32", "ckpt": "best", "overlays": "true",
       "max_pixels": "50000000"}


def _float(value: str, setting: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{setting}={value}: expected a number") from None


def predict(opts: dict[str, Any], overrides: list[str], progress: bool = True) -> dict[str, Any]:
    """Check the settings and the run, load it, predict on the inputs, write the outputs; returns the summary."""
    files = list_inputs(opts["input"])
    batch_size = require_int(opts["batch_size"], "batch_size", 1)
    max_pixels = require_int(opts.get("max_pixels", OWN["max_pixels"]), "max_pixels", 1)
    camera = parse_camera(opts["camera"])
    overlays = flag(opts["overlays"], "overlays")
    opened = open_run(opts["run"], opts["ckpt"], overrides)
    boxes = None
    if opts["boxes"] is not None:
        boxes = read_boxes(Path(opts["boxes"]), _float(opts["box_score_thr"], "box_score_thr"), box_padding(opened.cfg))
    boxes_of = box_source(opts["box"], boxes)
    out = Path(opts["out"]) if opts["out"] else opened.run.path / "predictions" / input_name(opts["input"])
    model = load_opened(opened, opts["device"], batch_size, camera)
    described = {"boxes": opts["boxes"] or opts["box"], "box_padding": model.box_padding if boxes else 1.0,
                 "overrides": list(overrides)}
    summary = model.predict_files(files, out, boxes_of, described, overlays=overlays, progress=progress,
                                max_pixels=max_pixels)
    _report(summary)
    return summary


def input_name(spec: str) -> str:
    """The name of an input: the file's stem, the folder's name, or a glob's last plain folder."""
    path = Path(spec)
    if glob.has_magic(spec):
        head = list(itertools.takewhile(lambda part: not glob.has_magic(part), path.parts))
        name = head[-1] if head else ""
    else:
        name = path.name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "input"


def _report(summary: dict[str, Any]) -> None:
    """One line of counts, one on COCO results when the joint set has no COCO-17 order, then unreadable inputs."""
    console.print(f"wrote {summary['out']}: {summary['images']} image(s), {summary['videos']} video(s) "
                  f"({summary['frames']} frames), {summary['people']} people in images")
    if summary.get("coco_skipped"):
        console.print(summary["coco_skipped"])
    fails = summary["failures"]
    if fails:
        console.print(f"[bold yellow]{len(fails)} input(s) skipped[/bold yellow] (unreadable, or over max_pixels):")
        for f in fails:
            console.print(f"  {f['file']}: {f['error']}")
    if not summary["images"] and not summary["videos"]:
        raise DataError(f"no input could be read ({len(fails)} failed); see the list above")


def parse_args(argv: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """Split posereg-predict's own key=value settings from the config overrides."""
    parser = argparse.ArgumentParser(prog="posereg-predict", usage=USAGE, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="run=<dir> input=<path> and the settings above; key=value overrides")
    args = parser.parse_args(argv)
    try:
        return split_own_args(args.items, OWN, ("run", "input"))
    except ConfigError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-predict)."""
    opts, overrides = parse_args(argv)
    exit_2_on_bad_input(predict, opts, overrides)


if __name__ == "__main__":
    main()
