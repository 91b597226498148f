"""COCO keypoint OKS-AP/AR: pycocotools COCOeval on predictions gathered from every process."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from posereg.errors import ConfigError, DataError
from posereg.metrics import batch as mb
from posereg.metrics.oks import nms_per_image
from posereg.skeletons import get_joint_set

STAT_NAMES = ("coco_ap", "coco_ap50", "coco_ap75", "coco_ap_m", "coco_ap_l",
              "coco_ar", "coco_ar50", "coco_ar75", "coco_ar_m", "coco_ar_l")


def load_coco(ann_file: str | Path) -> COCO:
    """pycocotools COCO ground truth from a keypoints json, without its prints."""
    path = Path(ann_file)
    if not path.is_file():
        raise DataError(f"CocoKeypointAP.ann_file: {path} does not exist; point it at person_keypoints_*.json")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def coco_from_dataset(dataset: dict[str, Any]) -> COCO:
    """A pycocotools COCO object built from an in-memory dataset dict."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def evaluate_keypoints(
    coco_gt: COCO, results: list[dict[str, Any]], sigmas: Sequence[float] | None = None,
    img_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """Run COCOeval(iouType='keypoints') silently; the 10 summary stats under STAT_NAMES."""
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    known = set(coco_gt.getImgIds())
    unknown = sorted({r["image_id"] for r in results} - known)
    if unknown:
        raise DataError(f"CocoKeypointAP: predictions for image ids {unknown[:5]} absent from the GT annotations; "
                        "check meta['image_id'] and ann_file")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if img_ids is not None:
            ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: float(v) for n, v in zip(STAT_NAMES, ev.stats, strict=True)}


class CocoKeypointAP(Metric):
    """COCO OKS-AP/AR (all 10 COCOeval stats, 0-1) for top-down predictions.

    * Predictions are in posereg original-image pixels (pixel centre at +0.5) and are shifted by
      ``-pixel_offset`` into COCO's convention (0-based at pixel centres) before evaluation.
    * Instance score = box score (``meta['box_score']``, 1 with GT boxes) x mean keypoint confidence
      (``preds['joint_conf']``; 1 when the method has none).
    * Ground truth: the official ``ann_file`` json (all its images count, as the COCO server does;
      ``restrict_to_predicted_images=True`` evaluates only the images seen), or, without one, the
      batch GT itself (joints mapped back to the image, v = 2 where labelled, ``area``, ``bbox``).
    * Predictions live in list states gathered with ``dist_reduce_fx="cat"``; duplicates of one
      sample (``meta['index']``, e.g. from DistributedSampler padding) are dropped and results sorted
      by sample so COCOeval sees the same list in any process layout.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        ann_file: str | None = None,
        joint_set: str = "coco17",
        sigmas: Sequence[float] | None = None,
        pixel_offset: float = 0.5,
        restrict_to_predicted_images: bool = False,
        oks_nms_thr: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if oks_nms_thr is not None and not 0.0 < float(oks_nms_thr) <= 1.0:
            raise ConfigError(f"CocoKeypointAP.oks_nms_thr={oks_nms_thr}: use a value in (0, 1] (0.9 as HRNet) or null")
        self.oks_nms_thr = None if oks_nms_thr is None else float(oks_nms_thr)
        js = get_joint_set(joint_set)
        self.sigmas = tuple(sigmas) if sigmas is not None else js.oks_sigmas
        if self.sigmas is None or len(self.sigmas) != js.num_joints:
            raise ConfigError(f"CocoKeypointAP: joint set {js.name} has no OKS sigmas; pass sigmas=[...] "
                              f"with {js.num_joints} values")
        self.ann_file = ann_file
        self.joint_names = js.names
        self.num_joints = js.num_joints
        self.pixel_offset = pixel_offset
        self.restrict = restrict_to_predicted_images
        self._coco_gt: COCO | None = None
        for name in ("image_ids", "sample_ids", "keypoints", "kp_conf", "box_scores", "pred_area",
                     "gt_keypoints", "gt_visible", "gt_area", "gt_bbox"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred: Tensor,
        image_ids: Sequence[int] | Tensor,
        conf: Tensor | None = None,
        box_scores: Tensor | None = None,
        sample_ids: Sequence[int] | Tensor | None = None,
        gt: Tensor | None = None,
        gt_mask: Tensor | None = None,
        area: Tensor | None = None,
        bbox: Tensor | None = None,
        pred_area: Tensor | None = None,
    ) -> None:
        """Add (B,J,2) image-pixel predictions of images ``image_ids``; GT only without an ann_file."""
        b, j = pred.shape[:2]
        if j != self.num_joints:
            raise ConfigError(f"CocoKeypointAP: expected {self.num_joints} joints, got {j}; check data.joint_set")
        dev = pred.device
        self.image_ids.append(torch.as_tensor(image_ids, dtype=torch.int64, device=dev).reshape(b))
        sids = torch.full((b,), -1, dtype=torch.int64, device=dev) if sample_ids is None else sample_ids
        self.sample_ids.append(torch.as_tensor(sids, dtype=torch.int64, device=dev).reshape(b))
        self.keypoints.append(pred.detach().double())
        ones = torch.ones(b, j, dtype=torch.float64, device=dev)
        self.kp_conf.append(ones if conf is None else conf.detach().double().reshape(b, j))
        self.box_scores.append(ones[:, 0] if box_scores is None else box_scores.detach().double().reshape(b))
        if self.oks_nms_thr is not None and pred_area is None:
            raise ConfigError("CocoKeypointAP(oks_nms_thr=...) needs each prediction's box area (batch['area'])")
        self.pred_area.append(ones[:, 0] if pred_area is None else pred_area.detach().double().reshape(b))
        if self.ann_file is None:
            if gt is None or area is None or bbox is None:
                raise ConfigError("CocoKeypointAP without ann_file builds GT from batches: pass gt, area and bbox")
            self.gt_keypoints.append(gt.detach().double())
            vis = torch.ones(b, j, dtype=torch.bool, device=dev) if gt_mask is None else gt_mask.bool()
            self.gt_visible.append(vis.to(torch.float64))
            self.gt_area.append(area.detach().double().reshape(b))
            self.gt_bbox.append(bbox.detach().double().reshape(b, 4))

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Predictions in image pixels with meta image_id / index / box_score; GT from the batch if no ann_file."""
        pred = mb.require(preds, "joints_2d_image", "CocoKeypointAP")
        index = mb.meta_list(batch, "index")
        image_ids = mb.meta_list(batch, "image_id")
        if image_ids is None:
            if self.ann_file is not None or index is None:
                raise DataError("CocoKeypointAP: batch['meta'] has no 'image_id'; the COCO dataset must provide it")
            image_ids = index
        box = mb.meta_list(batch, "box_score")
        box_scores = None if box is None else torch.as_tensor(box, dtype=torch.float64, device=pred.device)
        kw: dict[str, Any] = {}
        if self.ann_file is None:
            kw = {"gt": mb.gt_2d_image(batch), "gt_mask": mb.mask_2d(batch),
                  "area": mb.require(batch, "area", "CocoKeypointAP"),
                  "bbox": mb.require(batch, "bbox", "CocoKeypointAP")}
        self.update(pred, image_ids, preds.get("joint_conf"), box_scores, index, pred_area=batch.get("area"), **kw)

    def _order(self, sample_ids: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
        """Indices of the unique samples in a layout-independent order."""
        if len(sample_ids) and (sample_ids >= 0).all():
            _, first = np.unique(sample_ids, return_index=True)  # sorted by sample id, first occurrence
            return first
        return np.argsort(image_ids, kind="stable")

    def _gt_from_states(self, order: np.ndarray) -> COCO:
        kp = dim_zero_cat(self.gt_keypoints).cpu().numpy()[order] - self.pixel_offset
        vis = dim_zero_cat(self.gt_visible).cpu().numpy()[order] > 0
        area = dim_zero_cat(self.gt_area).cpu().numpy()[order]
        bbox = dim_zero_cat(self.gt_bbox).cpu().numpy()[order]
        img = dim_zero_cat(self.image_ids).cpu().numpy()[order]
        anns = []
        for k in range(len(order)):
            flat = np.concatenate([np.where(vis[k, :, None], kp[k], 0.0), 2.0 * vis[k, :, None]], -1).reshape(-1)
            anns.append({"id": k + 1, "image_id": int(img[k]), "category_id": 1, "iscrowd": 0,
                         "keypoints": flat.tolist(), "num_keypoints": int(vis[k].sum()),
                         "area": float(area[k]), "bbox": bbox[k].tolist()})
        dataset = {"images": [{"id": int(i)} for i in sorted(set(img.tolist()))], "annotations": anns,
                   "categories": [{"id": 1, "name": "person", "keypoints": list(self.joint_names)}]}
        return coco_from_dataset(dataset)

    def compute(self) -> dict[str, float]:
        """The 10 COCOeval keypoint stats as coco_ap, coco_ap50, ..., coco_ar_l."""
        if isinstance(self.image_ids, list) and not self.image_ids:
            return dict.fromkeys(STAT_NAMES, 0.0)
        img = dim_zero_cat(self.image_ids).cpu().numpy()
        order = self._order(dim_zero_cat(self.sample_ids).cpu().numpy(), img)
        kp = dim_zero_cat(self.keypoints).cpu().numpy()[order] - self.pixel_offset
        conf = dim_zero_cat(self.kp_conf).cpu().numpy()[order]
        score = dim_zero_cat(self.box_scores).cpu().numpy()[order] * conf.mean(-1)
        area = dim_zero_cat(self.pred_area).cpu().numpy()[order]
        img = img[order]
        results = [{"image_id": int(img[k]), "category_id": 1, "score": float(score[k]), "area": float(area[k]),
                    "keypoints": np.concatenate([kp[k], conf[k, :, None]], -1).reshape(-1).tolist()}
                   for k in range(len(order))]
        if self.oks_nms_thr is not None:  # detection boxes: duplicates of one person are suppressed first
            results = nms_per_image(results, self.oks_nms_thr, self.sigmas)
        if self.ann_file is None:
            coco_gt = self._gt_from_states(order)
        else:
            if self._coco_gt is None:
                self._coco_gt = load_coco(self.ann_file)
            coco_gt = self._coco_gt
        img_ids = sorted(set(img.tolist())) if self.restrict else None
        return evaluate_keypoints(coco_gt, results, self.sigmas, img_ids)
