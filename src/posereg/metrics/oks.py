"""Object keypoint similarity (pycocotools' formula) and greedy OKS-NMS, in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posereg.skeletons import get_joint_set

COCO_SIGMAS = np.asarray(get_joint_set("coco17").oks_sigmas, dtype=np.float64)


def oks(g: np.ndarray, d: np.ndarray, area: float, sigmas: Sequence[float] | np.ndarray = COCO_SIGMAS,
        vis: np.ndarray | None = None) -> float:
    """OKS between two (J,2) keypoint sets (pycocotools' formula; vis masks the joints of g that count)."""
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    e = ((g - d) ** 2).sum(-1) / var / (area + np.spacing(1)) / 2
    mask = np.ones(len(g), dtype=bool) if vis is None else vis > 0
    return float(np.exp(-e[mask]).sum() / max(int(mask.sum()), 1)) if mask.any() else 0.0


def oks_nms(instances: list[dict[str, Any]], thr: float = 0.9,
            sigmas: Sequence[float] | np.ndarray = COCO_SIGMAS) -> list[int]:
    """Greedy OKS-NMS (HRNet / mmpose): indices kept, by descending score, among dicts with keypoints, score, area."""
    order = sorted(range(len(instances)), key=lambda k: -float(instances[k]["score"]))
    keep: list[int] = []
    for k in order:
        kp = np.asarray(instances[k]["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
        # mmpose's oks_iou normalizes by the mean of the two areas
        if all(oks(np.asarray(instances[m]["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2], kp,
                   (float(instances[m]["area"]) + float(instances[k]["area"])) / 2, sigmas) <= thr
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
