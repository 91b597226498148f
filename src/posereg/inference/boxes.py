"""Person boxes: the whole image, its largest centred square, or COCO detections, and their crop padding.

Boxes (xywh, original image pixels) become square crops as COCO's (``posereg.data.coco.box_to_crop``):
widened to the input aspect ratio, then padded by the run's ``box_padding`` (the first data source's,
1.25 when it has none; SynthPose's margins are 1.15-1.35) for detection boxes, and not padded for the
whole image or its largest centred square, which are the crop already.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from posereg.errors import ConfigError
from posereg.inference.inputs import Frame

BOX_MODES = ("whole", "center")
DEFAULT_PADDING = 1.25


def box_padding(cfg: DictConfig) -> float:
    """The run's crop padding for detection boxes: the first data source's box_padding, else 1.25."""
    for src in (cfg.data.get("sources") or {}).values():
        if src is not None and src.get("box_padding") is not None:
            return float(src.box_padding)
    return DEFAULT_PADDING


@dataclass(frozen=True)
class PersonBox:
    """One person box in original image pixels (xywh, continuous) and its detection score."""

    bbox: tuple[float, float, float, float]
    score: float = 1.0
    padding: float = 1.0


def whole_box(width: int, height: int) -> PersonBox:
    """The whole image as the person box (widened to a square crop, not padded)."""
    return PersonBox((0.0, 0.0, float(width), float(height)))


def center_box(width: int, height: int) -> PersonBox:
    """The largest centred square of the image."""
    s = float(min(width, height))
    return PersonBox(((width - s) / 2, (height - s) / 2, s, s))


def read_boxes(path: Path, score_thr: float = 0.0, padding: float = DEFAULT_PADDING) -> dict[Any, list[PersonBox]]:
    """COCO detections ([{image_id | file_name, bbox: [x,y,w,h], score}]) grouped by image_id and by file name."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"boxes={path}: no such file")
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"boxes={path}: not a JSON file ({err})") from None
    if not isinstance(entries, list):
        raise ConfigError(f"boxes={path}: expected a list of COCO detections [{{image_id, bbox, score}}, ...]")
    out: dict[Any, list[PersonBox]] = {}
    for k, e in enumerate(entries):
        where = f"boxes={path} entry {k}"
        if not isinstance(e, dict) or "bbox" not in e or not ({"image_id", "file_name"} & set(e)):
            raise ConfigError(f"{where}: needs bbox and image_id or file_name")
        if e.get("category_id", 1) != 1:
            continue  # not a person
        try:
            bbox = tuple(float(v) for v in e["bbox"])
            score = float(e.get("score", 1.0))
        except (TypeError, ValueError):
            bbox, score = (), float("nan")
        if len(bbox) != 4 or not np.isfinite([*bbox, score]).all() or bbox[2] <= 0 or bbox[3] <= 0:
            raise ConfigError(f"{where}: bbox must be [x, y, w, h] with w, h > 0 and a finite score")
        if score < score_thr:
            continue
        key = e["file_name"] if "file_name" in e else e["image_id"]
        if isinstance(key, str) and "file_name" in e:
            key = Path(key).name
        out.setdefault(key, []).append(PersonBox(bbox, score, padding))  # type: ignore[arg-type]
    return out


BoxSource = Callable[[Frame], list[PersonBox]]


def box_source(mode: str, boxes: dict[Any, list[PersonBox]] | None = None) -> BoxSource:
    """Person boxes per frame: from a detections dict (by file name, then image_id), the whole image or its centre."""
    if boxes is not None:
        def from_file(frame: Frame) -> list[PersonBox]:
            if not frame.is_video and frame.source.name in boxes:
                return boxes[frame.source.name]
            return boxes.get(frame.image_id, [])

        return from_file
    if mode not in BOX_MODES:
        raise ConfigError(f"box={mode}: use one of {', '.join(BOX_MODES)}, or boxes=<detections json>")
    make = whole_box if mode == "whole" else center_box
    return lambda frame: [make(frame.pixels.shape[1], frame.pixels.shape[0])]
