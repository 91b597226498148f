"""MPI-INF-3DHP 3D PCK@150 mm and AUC over 0..150 mm on the official 14-joint subset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from posereg.errors import ConfigError
from posereg.metrics import batch as mb
from posereg.metrics.functional import CURVE_THRESHOLDS_3D, joint_errors, pck3d_counts, ratio_percent, root_align
from posereg.skeletons import get_joint_set

# The 14 joints of the official 3DHP evaluation (head top, neck, shoulders, elbows, wrists, hips,
# knees, ankles): pelvis, spine and head/nose are left out. Found by name in any joint set.
PCK3D_JOINTS = ("head_top", "neck") + tuple(
    f"{s}_{p}" for p in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for s in ("r", "l")
)


def subset_indices(joint_set: str, names: Sequence[str] = PCK3D_JOINTS) -> list[int]:
    """Indices of the named joints in the joint set; ConfigError when one is missing."""
    js = get_joint_set(joint_set)
    missing = [n for n in names if n not in js.names]
    if missing:
        raise ConfigError(f"PCK3D: joint set {js.name} lacks {missing}; pass joints=[...] explicitly")
    return [js.index(n) for n in names]


class PCK3D(Metric):
    """3D PCK and AUC in percent, MPJPE in mm, on root-aligned poses.

    * ``pck3d``: fraction of evaluated joints with error ``< threshold`` (150 mm);
    * ``auc3d``: mean PCK3D over 0, 5, ..., 150 mm (31 thresholds);
    * ``mpjpe``: mean error over the same joints (``report_mpjpe=False`` leaves it to an MPJPE metric).
    Evaluated joints: the 3DHP 14-joint subset found by name in ``joint_set`` unless ``joints`` is given.
    Root alignment on ``root_index`` (skip with ``root_aligned=True``); mask ``weights[..., 2] > 0``.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        joint_set: str = "h36m17",
        joints: Sequence[int] | None = None,
        threshold: float = 150.0,
        auc_thresholds: Sequence[float] = CURVE_THRESHOLDS_3D,
        root_index: int = 0,
        root_aligned: bool = False,
        report_mpjpe: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_mpjpe = report_mpjpe
        self.joints = list(joints) if joints is not None else subset_indices(joint_set)
        self.auc_thresholds = tuple(float(t) for t in auc_thresholds)
        self.threshold = float(threshold)
        self.root_index = root_index
        self.root_aligned = root_aligned
        self.add_state("correct", torch.zeros(len(self.auc_thresholds) + 1, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("err_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> None:
        """Accumulate (B,J,3) predictions against GT (mm) with a (B,J) 3D label mask."""
        b, j = gt.shape[:2]
        m = torch.ones(b, j, dtype=torch.bool, device=gt.device) if mask is None else mask.bool()
        if not self.root_aligned:
            pred, gt = root_align(pred, self.root_index), root_align(gt, self.root_index)
            m = m & m[:, self.root_index : self.root_index + 1]
        idx = self.joints
        p, g, m = pred[:, idx], gt[:, idx], m[:, idx]
        # masked joints may hold non-finite values (2D-only samples have no camera); 0 * nan is nan
        p, g = p.masked_fill(~m[..., None], 0.0), g.masked_fill(~m[..., None], 0.0)
        c, t = pck3d_counts(p, g, m, (self.threshold,) + self.auc_thresholds)
        self.correct += c
        self.count += t
        self.err_sum += (joint_errors(p, g) * m).sum()

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Compare preds['joints_3d_cam'] with batch['joints_3d'] (mm)."""
        pred = mb.require(preds, "joints_3d_cam", "PCK3D")
        self.update(pred, mb.require(batch, "joints_3d", "PCK3D"), mb.mask_3d(batch))

    def compute(self) -> dict[str, Tensor]:
        """pck3d, auc3d (percent) and, unless report_mpjpe=False, mpjpe (mm) on the evaluated joints."""
        pct = ratio_percent(self.correct, self.count.expand_as(self.correct))
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.count.device)
        out = {"pck3d": pct[0], "auc3d": pct[1:].mean()}
        if self.report_mpjpe:
            out["mpjpe"] = torch.where(self.count > 0, self.err_sum / self.count.clamp_min(1), nan)
        return out
