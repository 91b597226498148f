"""Object keypoint similarity (pycocotools' formula) and greedy OKS-NMS, in numpy.

Coordinates: :func:`oks` is frame-agnostic, but its keypoints and box must share one frame. pycocotools
compares COCO-convention keypoints (0-based pixel centres = posereg pixels - 0.5) with the raw COCO
``bbox`` (xywh, continuous, not shifted at load): that is the frame :class:`~posereg.metrics.coco.CocoKeypointAP`
hands to pycocotools and in which it runs OKS-NMS, so pass COCO keypoints with the COCO box (or shift
the box by +0.5 in x and y to compare posereg-pixel keypoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posereg.skeletons import get_joint_set

COCO_SIGMAS = np.asarray(get_joint_set("coco17").oks_sigmas, dtype=np.float64)


def oks(g: np.ndarray, d: np.ndarray, area: float, sigmas: Sequence[float] | np.ndarray = COCO_SIGMAS,
        vis: np.ndarray | None = None, box: Sequence[float] | np.ndarray | None = None) -> float:
    """OKS of detection d against reference (ground truth) g, both (J,2): pycocotools' ``computeOks``.

    ``e_i = d_i^2 / (2 area (2 sigma_i)^2)`` (area + eps as pycocotools), OKS = mean of ``exp(-e_i)``.
    * ``vis`` (J,) masks the joints of g that count (``v > 0``; all when None); ``d_i = ||g_i - d_i||``.
    * A reference with no labelled keypoint (every ``vis <= 0``) uses COCO's box fallback: ``d_i`` is
      the distance of ``d_i`` to ``box`` (g's xywh box) expanded by its size on every side,
      ``x0 = bx - bw, x1 = bx + 2 bw`` (same for y), ``dx = max(0, x0 - x) + max(0, x - x1)``, and every
      keypoint counts. ``box`` is then required (ValueError without it); it is unused otherwise.
    g, d and box must be in one coordinate frame (module docstring: COCO keypoints with the COCO box).
    """
    g = np.asarray(g, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    mask = np.ones(len(g), dtype=bool) if vis is None else np.asarray(vis).reshape(-1) > 0
    if mask.any():
        sq = ((g - d) ** 2).sum(-1)
    else:
        if box is None:
            raise ValueError("oks: the reference has no labelled keypoint; pass its xywh box for COCO's box fallback")
        bx, by, bw, bh = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
        x0, x1, y0, y1 = bx - bw, bx + 2 * bw, by - bh, by + 2 * bh
        dx = np.maximum(0.0, x0 - d[:, 0]) + np.maximum(0.0, d[:, 0] - x1)
        dy = np.maximum(0.0, y0 - d[:, 1]) + np.maximum(0.0, d[:, 1] - y1)
        sq = dx**2 + dy**2
        mask = np.ones(len(g), dtype=bool)
    e = sq / var / (area + np.spacing(1)) / 2
    return float(np.exp(-e[mask]).sum() / int(mask.sum()))


def oks_nms(instances: list[dict[str, Any]], thr: float = 0.9,
            sigmas: Sequence[float] | np.ndarray = COCO_SIGMAS) -> list[int]:
    """Greedy OKS-NMS (HRNet / mmpose): indices kept, by descending score, among dicts with keypoints, score, area.

    The kept instance plays the ground truth with every keypoint counting (``vis=None``, as mmpose's
    ``oks_iou`` without a visibility threshold), so COCO's box fallback never applies; an instance's
    ``bbox`` is forwarded when present all the same.
    """
    order = sorted(range(len(instances)), key=lambda k: -float(instances[k]["score"]))
    keep: list[int] = []
    for k in order:
        kp = np.asarray(instances[k]["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
        # mmpose's oks_iou normalizes by the mean of the two areas
        if all(oks(np.asarray(instances[m]["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2], kp,
                   (float(instances[m]["area"]) + float(instances[k]["area"])) / 2, sigmas,
                   box=instances[m].get("bbox")) <= thr
               for m in keep):
            keep.append(k)
    return keep


def nms_per_image(results: list[dict[str, Any]], thr: float,
                  sigmas: Sequence[float] | np.ndarray = COCO_SIGMAS) -> list[dict[str, Any]]:
    """OKS-NMS applied image by image to COCO result dicts (each with image_id, keypoints, score, area)."""
    by_image: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    kept: list[dict[str, Any]] = []
    for image_id in sorted(by_image):
        group = by_image[image_id]
        kept += [group[i] for i in oks_nms(group, thr, sigmas)]
    return kept
