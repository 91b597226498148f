"""COCO keypoints: top-down person crops from GT boxes or from a detection file, and OKS-NMS.

Convention: COCO keypoints are 0-based coordinates of pixel centres, so posereg's continuous
coordinate is ``x + 0.5`` (DESIGN section 3), converted once here; predictions go back with
:func:`to_coco_convention` (``- 0.5``) right before pycocotools. Boxes (xywh) are continuous
already and are not shifted.

Crop box as mmpose / HRNet: the box is widened to the input aspect ratio, then padded by 1.25.
Detection mode (``bbox_file``, the ``COCO_val2017_detections_AP_H_56_person.json`` format) keeps
person detections with ``score >= det_score_thr``; the evaluation rescores each instance
(box score x mean keypoint confidence) and applies OKS-NMS per image (:func:`posereg.metrics.oks.oks_nms`,
through ``CocoKeypointAP(oks_nms_thr=...)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from posereg.data.records import (
    PoseRecord,
    RecordDataset,
    check_finite,
    filter_records,
    for_split,
    record_name,
    require_file,
    require_root,
)
from posereg.errors import ConfigError, DataError

NUM_JOINTS = 17
PERSON = 1
DEFAULT_ANN = {"train": "annotations/person_keypoints_train2017.json",
               "val": "annotations/person_keypoints_val2017.json",
               "test": "annotations/person_keypoints_val2017.json"}
DEFAULT_IMAGES = {"train": "train2017", "val": "val2017", "test": "val2017"}


def from_coco_convention(xy: Any) -> np.ndarray:
    """COCO keypoint coordinates (0-based pixel centres) -> continuous coordinates (+0.5)."""
    return np.asarray(xy, dtype=np.float64) + 0.5


def to_coco_convention(xy: Any) -> np.ndarray:
    """Continuous coordinates -> COCO keypoint coordinates (-0.5), for pycocotools."""
    return np.asarray(xy, dtype=np.float64) - 0.5


def box_to_crop(bbox: Any, aspect_ratio: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """(center, (w, h)) of the crop for an xywh box: widened to aspect_ratio = W_in / H_in, then padded."""
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + w / 2, y + h / 2])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def load_coco_json(path: Path) -> dict[str, Any]:
    """A COCO-format keypoint json, or a DataError naming the file."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the COCO json ({e})") from None
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"{path}: no {key!r} list; expected COCO keypoint annotations")
    return data


def _clip_box(bbox: Any, width: int, height: int) -> np.ndarray | None:
    """The xywh box clipped to the image (as mmpose's sanitizing), None when empty."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(width), x + max(0.0, w)), min(float(height), y + max(0.0, h))
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1])


def parse_annotation(i: int, ann: dict[str, Any], img: dict[str, Any], ann_file: Path, image_dir: Path,
                     aspect_ratio: float, padding: float) -> PoseRecord | None:
    """One GT person annotation -> PoseRecord (None for crowd, keypoint-less or empty-box annotations)."""
    where = record_name(ann_file, f"annotation id {ann.get('id', i)}")
    if ann.get("iscrowd", 0) or ann.get("category_id", PERSON) != PERSON:
        return None
    kps = np.asarray(ann.get("keypoints", []), dtype=np.float64)
    if kps.size != NUM_JOINTS * 3:
        raise DataError(f"{where}: keypoints has {kps.size} values, expected {NUM_JOINTS * 3} (17 x [x, y, v])")
    kps = kps.reshape(NUM_JOINTS, 3)
    if not np.isfinite(kps).all():
        raise DataError(f"{where}: keypoints contain NaN/inf; fix the annotation or set skip_bad_records=true")
    vis = (kps[:, 2] > 0).astype(np.float64)
    if vis.sum() == 0:
        return None
    located = _locate(where, ann, img, image_dir, aspect_ratio, padding)
    if located is None:
        return None
    box, center, size, image = located
    return PoseRecord(image=image, joints_2d=from_coco_convention(kps[:, :2]) * vis[:, None], visible=vis,
                      center=center, box_size=size, bbox=box, area=float(ann.get("area", box[2] * box[3])),
                      meta={"dataset": "coco", "index": i, "image_id": int(img["id"]),
                            "ann_id": int(ann.get("id", -1)), "box_score": 1.0})


def _locate(where: str, entry: dict[str, Any], img: dict[str, Any], image_dir: Path, aspect_ratio: float,
            padding: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, Path] | None:
    """An annotation's or detection's box clipped to its image, the crop around it and the image file
    (None for an empty box)."""
    box = _clip_box(check_finite(entry.get("bbox", [0, 0, 0, 0]), where, "bbox"), img["width"], img["height"])
    if box is None:
        return None
    center, size = box_to_crop(box, aspect_ratio, padding)
    image = image_dir / img["file_name"]
    if not image.is_file():
        raise DataError(f"{where}: image {image} does not exist; check data root and image_dir")
    return box, center, size, image


def parse_detection(i: int, det: dict[str, Any], img: dict[str, Any], det_file: Path, image_dir: Path,
                    aspect_ratio: float, padding: float) -> PoseRecord | None:
    """One detection -> PoseRecord without keypoint labels (None for non-person or empty boxes)."""
    where = record_name(det_file, i)
    if det.get("category_id", PERSON) != PERSON:
        return None
    located = _locate(where, det, img, image_dir, aspect_ratio, padding)
    if located is None:
        return None
    box, center, size, image = located
    score = float(check_finite(det.get("score", 1.0), where, "score"))
    return PoseRecord(image=image, joints_2d=np.zeros((NUM_JOINTS, 2)), visible=np.zeros(NUM_JOINTS),
                      center=center, box_size=size, bbox=box, area=float(box[2] * box[3]),
                      meta={"dataset": "coco", "index": i, "image_id": int(img["id"]), "ann_id": -1,
                            "box_score": score})


def load_records(root: Any, split: str = "train", ann_file: str | None = None, image_dir: str | None = None,
                 bbox_file: str | None = None, det_score_thr: float = 0.0, input_size: Any = 256,
                 box_padding: float = 1.25, skip_bad_records: bool = False,
                 setting: str = "data.root") -> tuple[list[PoseRecord], Path]:
    """Parse a COCO split into person records (GT boxes, or detections with bbox_file); also the GT json path."""
    root_p = require_root(root, setting)
    if split not in DEFAULT_ANN:
        raise ConfigError(f"coco split {split!r}: use train, val or test")
    ann_file = for_split(ann_file, split, "coco ann_file")
    image_dir = for_split(image_dir, split, "coco image_dir")
    bbox_file = for_split(bbox_file, split, "coco bbox_file") if split != "train" else None  # train: GT boxes
    ann = require_file(root_p, ann_file or DEFAULT_ANN[split], "coco ann_file")
    data = load_coco_json(ann)
    images = {int(im["id"]): im for im in data["images"]}
    img_root = root_p / (image_dir if image_dir is not None else DEFAULT_IMAGES[split])
    w_in, h_in = (input_size, input_size) if np.ndim(input_size) == 0 else tuple(input_size)
    ar = float(w_in) / float(h_in)

    def lookup(image_id: Any, where: str) -> dict[str, Any]:
        if int(image_id) not in images:
            raise DataError(f"{where}: image_id {image_id} is not in {ann}")
        return images[int(image_id)]

    if bbox_file:
        det_path = require_file(root_p, bbox_file, "coco bbox_file")
        try:
            with open(det_path) as fh:
                dets = json.load(fh)
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{det_path}: cannot read the detection json ({e})") from None
        if not isinstance(dets, list):
            raise DataError(f"{det_path}: expected a list of detections")
        kept = [d for d in dets if float(d.get("score", 0.0)) >= det_score_thr and int(d["image_id"]) in images]

        def check(i: int, d: dict[str, Any]) -> PoseRecord | None:
            return parse_detection(i, d, lookup(d["image_id"], record_name(det_path, i)), det_path, img_root,
                                   ar, box_padding)

        recs = filter_records(kept, check, skip_bad_records, f"coco {split} detections ({det_path})")
    else:
        def check(i: int, a: dict[str, Any]) -> PoseRecord | None:
            return parse_annotation(i, a, lookup(a.get("image_id"), record_name(ann, i)), ann, img_root, ar,
                                    box_padding)

        recs = filter_records(data["annotations"], check, skip_bad_records, f"coco {split} ({ann})")
    out = [r for r in recs if r is not None]
    if not out:
        raise DataError(f"coco {split}: no usable person instances in {ann}")
    for k, r in enumerate(out):
        r.meta["index"] = k
    return out, ann


class COCODataset(RecordDataset):
    """COCO person crops from GT boxes or from a detection file, joints mapped from ``coco17``."""

    name = "coco"
    source_joint_set = "coco17"

    def __init__(self, root: Any = None, split: str = "train", joint_set: str | None = None, input_size: Any = 256,
                 augment: Any = None, seed: int = 0, ann_file: str | None = None, image_dir: str | None = None,
                 bbox_file: str | None = None, det_score_thr: float = 0.0, box_padding: float = 1.25,
                 skip_bad_records: bool = False, setting: str = "data.root") -> None:
        records, self.ann_path = load_records(root, split, ann_file, image_dir, bbox_file, det_score_thr,
                                              input_size, box_padding, skip_bad_records, setting)
        super().__init__(records, joint_set, input_size, augment, seed, split, skip_bad_records=skip_bad_records)
        self.detections = bool(bbox_file)
