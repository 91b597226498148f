"""MPII PCKh, its 0..0.5 curve, AUC and per-part columns as a torchmetrics Metric.

Per-part columns (``pckh@<thr>/<part>``) follow the HRNet / official MPII tables: the mean of the
per-joint PCKh (correct / labelled for that joint over the whole evaluated set) of the part's joints.
A part with a joint that has no label anywhere in the set is undefined: ``compute()`` returns
``None`` for it (stored as ``null`` in metrics.json extras, where a float NaN would be written as a
bare, non-standard ``NaN`` token); it is never replaced by the labelled side alone. The pooled
``pckh@<thr>``, the curve and the AUC do not depend on this rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from posereg.errors import ConfigError
from posereg.metrics import batch as mb
from posereg.metrics.functional import (
    CURVE_THRESHOLDS_2D,
    auc,
    included_joints,
    part_percent,
    pck_counts,
    pooled_percent,
)
from posereg.skeletons import get_joint_set

HEAD_COLUMNS = ("head_top", "neck_head_top")


class PCKh(Metric):
    """PCKh (official MPII definitions) in percent.

    * correct iff ``||pred - gt|| / head_size <= thr`` (ties count, as the MATLAB code and HRNet);
    * joints without a 2D label are excluded from numerator and denominator;
    * ``pckh@<thr>`` is pooled over all labelled joints outside ``joint_set.pckh_excluded``
      (pelvis and thorax for MPII-16: the 14-joint "Total"; all joints for other sets);
    * ``pckh@0.1`` uses exactly 0.10 (not HRNet's curve index 11 = 0.11);
    * ``pckh_curve``: pooled PCKh at 0, 0.01, ..., 0.50; ``auc``: its mean (``auc_method="mean"``,
      Integral paper) or ``trapz / 0.5`` (``"trapezoid"``, official MATLAB);
    * ``pckh@<thr>/<part>``: mean of the per-joint PCKh of the part's joints (left/right pair), each
      joint's PCKh being its correct / labelled counts over the whole set (HRNet / official tables);
      ``None`` (JSON ``null``) when a joint of the part has no label in the set, never the labelled
      side alone (:func:`posereg.metrics.functional.part_percent` gives NaN there);
      ``head_column="head_top"`` (default) or ``"neck_head_top"`` (the MATLAB table's Head column).

    States are per-threshold, per-joint ``correct`` and per-joint ``total`` counts summed across
    batches and processes (``dist_reduce_fx="sum"``), so every output equals one pass over the set.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        joint_set: str = "mpii16",
        thresholds: Sequence[float] = (0.5, 0.1),
        auc_method: str = "mean",
        head_column: str = "head_top",
        per_part: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        js = get_joint_set(joint_set)
        if auc_method not in ("mean", "trapezoid"):
            raise ConfigError(f"PCKh.auc_method={auc_method!r}: use 'mean' or 'trapezoid'")
        if head_column not in HEAD_COLUMNS:
            raise ConfigError(f"PCKh.head_column={head_column!r}: use one of {HEAD_COLUMNS}")
        self.num_joints = js.num_joints
        self.included = included_joints(js.num_joints, js.pckh_excluded)
        self.report = tuple(float(t) for t in thresholds)
        self.all_thresholds = CURVE_THRESHOLDS_2D + tuple(t for t in self.report if t not in CURVE_THRESHOLDS_2D)
        self.auc_method = auc_method
        self.parts = dict(js.parts) if per_part else {}
        if per_part and head_column == "neck_head_top":
            if "neck" not in js.names or "head_top" not in js.names:
                raise ConfigError(f"PCKh.head_column='neck_head_top' needs neck and head_top in {js.name}")
            self.parts["head"] = (js.index("neck"), js.index("head_top"))
        t = len(self.all_thresholds)
        self.add_state("correct", torch.zeros(t, js.num_joints, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(js.num_joints, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, mask: Tensor | None, head_size: Tensor) -> None:
        """Accumulate (B,J,2) predictions against GT with a (B,J) label mask and (B,) head sizes."""
        if gt.shape[1] != self.num_joints:
            raise ConfigError(f"PCKh: expected {self.num_joints} joints, got {gt.shape[1]}; check data.joint_set")
        c, t = pck_counts(pred, gt, mask, head_size, self.all_thresholds)
        self.correct += c
        self.total += t

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Compare preds['joints_2d_image'] with the batch GT in original image pixels."""
        pred = mb.require(preds, "joints_2d_image", "PCKh")
        self.update(pred, mb.gt_2d_image(batch), mb.mask_2d(batch), mb.head_size_image(batch))

    def compute(self) -> dict[str, Tensor | None]:
        """pckh@<thr>, pckh_curve, auc and per-part pckh@<thr>/<part> (None when undefined), percent."""
        pooled = pooled_percent(self.correct, self.total, self.included)
        n_curve = len(CURVE_THRESHOLDS_2D)
        curve = pooled[:n_curve]
        out: dict[str, Tensor | None] = {"pckh_curve": curve, "auc": auc(curve, CURVE_THRESHOLDS_2D, self.auc_method)}
        for thr in self.report:
            k = self.all_thresholds.index(thr)
            name = f"pckh@{thr:g}"
            out[name] = pooled[k]
            for part, value in part_percent(self.correct[k], self.total, self.parts).items():
                out[f"{name}/{part}"] = value if bool(torch.isfinite(value)) else None
        return out


class ProxyPCKh(PCKh):
    """PCKh with the head-segment proxy normalizer: every output name says ``pckh_proxy``."""

    def compute(self) -> dict[str, Any]:
        return {k.replace("pckh", "pckh_proxy", 1) if k.startswith("pckh") else f"{k}_proxy": v
                for k, v in super().compute().items()}


def mpii_pckh(head_size_proxy: bool = False, **kwargs: Any) -> PCKh:
    """The PCKh metric for MPII; with the head-segment proxy its outputs are named pckh_proxy@... / auc_proxy."""
    return ProxyPCKh(**kwargs) if head_size_proxy else PCKh(**kwargs)

