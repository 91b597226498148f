"""MPJPE, PA-MPJPE and N-MPJPE in mm, frame-pooled and per action, as a torchmetrics Metric."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from posereg.errors import ConfigError
from posereg.metrics import batch as mb
from posereg.metrics.functional import joint_errors, n_scale, procrustes_align, root_align
from posereg.skeletons import get_joint_set

H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
                "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether")
# Per-joint states without a joint set: room for this many joints (named j0, j1, ... in compute()).
MAX_JOINTS = 64
# Spellings used by different Human3.6M releases and toolkits for the same action.
_ALIASES = {"takingphoto": "photo", "walkingdog": "walkdog", "walkingtogether": "walktogether"}


def action_key(action: str) -> str:
    """Canonical lookup key of an action name: letters only, lower case ('Directions 1' -> 'directions')."""
    key = re.sub(r"[^a-z]", "", str(action).lower())
    return _ALIASES.get(key, key)


class MPJPE(Metric):
    """Mean per-joint position errors in mm after root alignment.

    * ``mpjpe``: mean over all evaluated (frame, joint) pairs of ``||pred - gt||`` (frame-pooled).
      By default all joints including the root (zero error after alignment, as the Integral and
      SSP-Net authors' code); ``include_root=False`` drops the root joint.
    * ``pa_mpjpe``: per-frame similarity Procrustes fitted on the evaluated joints, no reflections
      (VideoPose3D ``p_mpjpe``); ``pa_scale=False`` gives the rigid fit of the Integral authors' code.
    * ``n_mpjpe``: per-frame optimal scale ``s = sum<p,g> / sum<p,p>`` of the root-aligned prediction.
    * ``mpjpe_action_mean`` / ``pa_mpjpe_action_mean``: mean of per-action means (VideoPose3D style)
      over the actions seen, beside ``mpjpe/<action>`` and ``pa_mpjpe/<action>``; needs actions
      (``batch['meta']['action']``) named in ``actions``; other actions count only in the pooled values.
    * ``mpjpe_joint/<joint>``: MPJPE of each evaluated joint (its error sum / its labelled frames), named
      from ``joint_set`` (``j<index>`` without one); ``per_joint=False`` leaves them out.

    Both poses are root-aligned on ``root_index`` unless ``root_aligned=True``; a frame whose root
    has no 3D label is skipped. Mask: ``weights[..., 2] > 0``. ``joints`` restricts evaluation (and the
    Procrustes fit) to those joint indices, e.g. ``range(17)`` for the 17 standard Human3.6M joints of
    the ``h36m18`` set, whose appended thorax the Integral code does not evaluate.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self,
        root_index: int = 0,
        include_root: bool = True,
        pa_scale: bool = True,
        root_aligned: bool = False,
        actions: Sequence[str] | None = H36M_ACTIONS,
        joints: Sequence[int] | None = None,
        joint_set: str | None = None,
        per_joint: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.joints = None if joints is None else [int(i) for i in joints]
        if self.joints is not None and root_index not in self.joints:
            raise ConfigError(f"MPJPE.joints={self.joints} must contain the root joint {root_index}")
        if root_index < 0:
            raise ConfigError(f"MPJPE.root_index={root_index}: must be a joint index >= 0")
        self.root_index = root_index
        self.include_root = include_root
        self.pa_scale = pa_scale
        self.root_aligned = root_aligned
        self.actions = tuple(actions or ())
        self._action_ids = {action_key(a): i for i, a in enumerate(self.actions)}
        for name in ("err_sum", "pa_sum", "n_sum", "count"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        n = len(self.actions)
        for name in ("act_err", "act_pa", "act_count"):
            self.add_state(name, torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.per_joint = per_joint
        self.joint_set = joint_set
        self.joint_names = get_joint_set(joint_set).names if joint_set else None
        size = len(self.joint_names) if self.joint_names else MAX_JOINTS
        for name in ("joint_err", "joint_count"):
            self.add_state(name, torch.zeros(size if per_joint else 0, dtype=torch.float64), dist_reduce_fx="sum")

    def _action_index(self, actions: Sequence[str] | None, batch_size: int) -> Tensor | None:
        if actions is None or not self.actions:
            return None
        if len(actions) != batch_size:
            raise ConfigError(f"MPJPE: got {len(actions)} actions for a batch of {batch_size}")
        return torch.tensor([self._action_ids.get(action_key(a), -1) for a in actions], device=self.count.device)

    def update(
        self, pred: Tensor, gt: Tensor, mask: Tensor | None = None, actions: Sequence[str] | None = None
    ) -> None:
        """Accumulate (B,J,3) predictions against GT (mm) with a (B,J) 3D label mask and optional actions."""
        b, j = gt.shape[:2]
        m = torch.ones(b, j, dtype=torch.bool, device=gt.device) if mask is None else mask.bool().clone()
        if not self.root_aligned:
            pred, gt = root_align(pred, self.root_index), root_align(gt, self.root_index)
            m = m & m[:, self.root_index : self.root_index + 1]
        if self.joints is not None:
            if max(self.joints) >= j:
                raise ConfigError(f"MPJPE.joints={self.joints} out of range for {j} joints")
            keep = torch.zeros_like(m)
            keep[:, self.joints] = True
            m = m & keep
        if not self.include_root:
            m[:, self.root_index] = False
        # 2D-only samples of a 3D model decode to non-finite camera coords (no camera); 0 * nan is nan
        pred, gt = pred.masked_fill(~m[..., None], 0.0), gt.masked_fill(~m[..., None], 0.0)
        w = m.double()
        per_joint = joint_errors(pred, gt) * w
        err = per_joint.sum(1)
        pa = (joint_errors(procrustes_align(pred, gt, m, self.pa_scale), gt) * w).sum(1)
        s = n_scale(pred, gt, m)
        nerr = (joint_errors(s[:, None, None] * pred.double(), gt) * w).sum(1)
        cnt = w.sum(1)
        self.err_sum += err.sum()
        self.pa_sum += pa.sum()
        self.n_sum += nerr.sum()
        self.count += cnt.sum()
        if self.per_joint:
            if j > self.joint_err.numel() or (self.joint_names is not None and j != len(self.joint_names)):
                raise ConfigError(f"MPJPE.joint_set={self.joint_set!r} has {self.joint_err.numel()} joints, "
                                  f"the poses {j}")
            self.joint_err[:j] += per_joint.sum(0)
            self.joint_count[:j] += w.sum(0)
        idx = self._action_index(actions, b)
        if idx is not None:
            known = idx >= 0
            k = idx[known]
            self.act_err.index_add_(0, k, err[known])
            self.act_pa.index_add_(0, k, pa[known])
            self.act_count.index_add_(0, k, cnt[known])

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Compare preds['joints_3d_cam'] with batch['joints_3d'] (mm); actions from batch['meta']['action']."""
        pred = mb.require(preds, "joints_3d_cam", "MPJPE")
        gt = mb.require(batch, "joints_3d", "MPJPE")
        self.update(pred, gt, mb.mask_3d(batch), mb.meta_list(batch, "action"))

    def compute(self) -> dict[str, Tensor]:
        """mpjpe, pa_mpjpe, n_mpjpe (+ per-action values when actions were seen, + per joint), mm."""
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.count.device)
        den = self.count.clamp_min(1)
        ok = self.count > 0
        out: dict[str, Tensor] = {
            "mpjpe": torch.where(ok, self.err_sum / den, nan),
            "pa_mpjpe": torch.where(ok, self.pa_sum / den, nan),
            "n_mpjpe": torch.where(ok, self.n_sum / den, nan),
        }
        seen = self.act_count > 0
        if bool(seen.any()):
            per = self.act_err[seen] / self.act_count[seen]
            per_pa = self.act_pa[seen] / self.act_count[seen]
            out["mpjpe_action_mean"] = per.mean()
            out["pa_mpjpe_action_mean"] = per_pa.mean()
            names = [a for a, s in zip(self.actions, seen.tolist(), strict=True) if s]
            for name, v, vp in zip(names, per, per_pa, strict=True):
                out[f"mpjpe/{name}"] = v
                out[f"pa_mpjpe/{name}"] = vp
        for i in torch.nonzero(self.joint_count > 0).flatten().tolist():
            name = self.joint_names[i] if self.joint_names else f"j{i}"
            out[f"mpjpe_joint/{name}"] = self.joint_err[i] / self.joint_count[i]
        return out
