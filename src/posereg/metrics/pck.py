"""Generic PCK with a bbox, torso or head-size normalizer (e.g. LSP PCK@0.2 torso)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from posereg.errors import ConfigError
from posereg.metrics import batch as mb
from posereg.metrics.functional import included_joints, joint_errors, pck_counts, pooled_percent
from posereg.skeletons import get_joint_set

NORMALIZERS = ("torso", "bbox", "head")


def torso_size(gt: Tensor, mask: Tensor | None, a: int, b: int) -> Tensor:
    """Distance between GT joints a and b per frame, (B,); 0 (frame excluded) when either is unlabelled."""
    d = joint_errors(gt[:, a], gt[:, b])
    if mask is not None:
        d = torch.where(mask[:, a] & mask[:, b], d, torch.zeros_like(d))
    return d


def bbox_size(bbox: Tensor) -> Tensor:
    """max(w, h) of (B,4) xywh boxes, (B,)."""
    return bbox[:, 2:4].double().amax(-1)


class PCK(Metric):
    """PCK in percent: correct iff ``||pred - gt|| / normalizer <= thr``, pooled over labelled joints.

    ``normalizer``: ``torso`` (distance between ``torso_joints`` of the GT, default left shoulder to
    right hip as the LSP PCK@0.2 protocol; frames missing either joint are skipped), ``bbox``
    (max side of ``batch['bbox']``) or ``head`` (``batch['head_size']``). All in original image pixels.
    ``compute()`` returns ``pck@<thr>`` for each threshold.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        joint_set: str = "lsp14",
        thresholds: Sequence[float] = (0.2,),
        normalizer: str = "torso",
        torso_joints: tuple[str, str] = ("l_shoulder", "r_hip"),
        excluded: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        js = get_joint_set(joint_set)
        if normalizer not in NORMALIZERS:
            raise ConfigError(f"PCK.normalizer={normalizer!r}: use one of {NORMALIZERS}")
        if normalizer == "torso":
            missing = [n for n in torso_joints if n not in js.names]
            if missing:
                raise ConfigError(f"PCK.torso_joints: {missing} not in joint set {js.name} ({list(js.names)})")
            self.torso = (js.index(torso_joints[0]), js.index(torso_joints[1]))
        self.normalizer = normalizer
        self.num_joints = js.num_joints
        self.thresholds = tuple(float(t) for t in thresholds)
        self.included = included_joints(js.num_joints, excluded)
        self.add_state("correct", torch.zeros(len(self.thresholds), js.num_joints, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(js.num_joints, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, mask: Tensor | None, normalizer: Tensor) -> None:
        """Accumulate (B,J,2) predictions against GT with a (B,J) mask and a (B,) normalizer length."""
        if gt.shape[1] != self.num_joints:
            raise ConfigError(f"PCK: expected {self.num_joints} joints, got {gt.shape[1]}; check data.joint_set")
        c, t = pck_counts(pred, gt, mask, normalizer, self.thresholds)
        self.correct += c
        self.total += t

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Compare preds['joints_2d_image'] with the batch GT in original image pixels."""
        pred = mb.require(preds, "joints_2d_image", "PCK")
        gt, mask = mb.gt_2d_image(batch), mb.mask_2d(batch)
        if self.normalizer == "torso":
            norm = torso_size(gt, mask, *self.torso)
        elif self.normalizer == "bbox":
            norm = bbox_size(mb.require(batch, "bbox", "PCK(normalizer=bbox)"))
        else:
            norm = mb.head_size_image(batch)
        self.update(pred, gt, mask, norm)

    def compute(self) -> dict[str, Tensor]:
        """pck@<thr> for each threshold, percent."""
        pooled = pooled_percent(self.correct, self.total, self.included)
        return {f"pck@{t:g}": pooled[k] for k, t in enumerate(self.thresholds)}
