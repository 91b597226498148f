"""LSP table metrics: PCK@0.2 (torso-normalized) and strict PCP@0.5, named by the labelling (pc / oc).

Observer- vs person-centric labels (see `posereg.data.lsp`) give different numbers; the metric names say
which one was used: ``pck_pc@0.2`` / ``pck_oc@0.2``, ``pcp_pc`` / ``pcp_oc``.
"""

from __future__ import annotations

from typing import Any

import torch

from posereg.errors import ConfigError
from posereg.metrics import batch as mb
from posereg.metrics.functional import pcp
from posereg.metrics.pck import PCK
from posereg.skeletons import get_joint_set

CENTRIC = ("person", "observer")


PCP_LIMBS = {
    "upper_leg": (("r_hip", "r_knee"), ("l_hip", "l_knee")),
    "lower_leg": (("r_knee", "r_ankle"), ("l_knee", "l_ankle")),
    "upper_arm": (("r_shoulder", "r_elbow"), ("l_shoulder", "l_elbow")),
    "lower_arm": (("r_elbow", "r_wrist"), ("l_elbow", "l_wrist")),
    "head": (("neck", "head_top"),),
}


class LSPPCK(PCK):
    """LSP table metrics: PCK@thr (torso-normalized) and strict PCP@0.5, named by the labelling (pc / oc).

    PCP covers the 9 segments of :data:`PCP_LIMBS` (legs, arms, head; the torso segment needs hip
    and shoulder midpoints and is left out), pooled as ``pcp_<c>`` and per segment ``pcp_<c>/<segment>``.
    """

    def __init__(self, centric: str = "person", joint_set: str = "lsp14", thresholds: Any = (0.2,),
                 pcp_alpha: float = 0.5, **kwargs: Any) -> None:
        if centric not in CENTRIC:
            raise ConfigError(f"LSP metric centric={centric!r}: use one of {list(CENTRIC)}")
        super().__init__(joint_set=joint_set, thresholds=thresholds, normalizer="torso", **kwargs)
        js = get_joint_set(joint_set)
        self.tag = "pc" if centric == "person" else "oc"
        self.alpha = float(pcp_alpha)
        self.limbs = {k: [(js.index(a), js.index(b)) for a, b in v] for k, v in PCP_LIMBS.items()
                      if all(a in js.names and b in js.names for a, b in v)}
        n = len(self.limbs)
        self.add_state("pcp_ok", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pcp_valid", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """PCK as the parent, plus PCP counts per segment group."""
        super().update_from_batch(preds, batch)
        pred, gt, mask = preds["joints_2d_image"], mb.gt_2d_image(batch), mb.mask_2d(batch)
        for k, limbs in enumerate(self.limbs.values()):
            a = [p for p, _ in limbs]
            b = [c for _, c in limbs]
            length = torch.linalg.norm(gt[:, a] - gt[:, b], dim=-1)
            valid = mask[:, a] & mask[:, b] & (length > 0)
            n_valid = valid.sum().double()
            if n_valid > 0:
                self.pcp_ok[k] += pcp(pred, gt, mask, limbs, self.alpha).double() * n_valid / 100.0
                self.pcp_valid[k] += n_valid

    def compute(self) -> dict[str, Any]:
        """pck_<c>@thr, pcp_<c> (pooled) and pcp_<c>/<segment>, in percent."""
        out = {k.replace("pck", f"pck_{self.tag}", 1): v for k, v in super().compute().items()}
        ok, valid = self.pcp_ok, self.pcp_valid
        out[f"pcp_{self.tag}"] = 100.0 * ok.sum() / valid.sum().clamp_min(1)
        for k, name in enumerate(self.limbs):
            out[f"pcp_{self.tag}/{name}"] = 100.0 * ok[k] / valid[k].clamp_min(1)
        return out


def lsp_pck(centric: str = "person", **kwargs: Any) -> LSPPCK:
    """The LSP metric (PCK@0.2 torso + PCP) for the configured labelling."""
    return LSPPCK(centric=centric, **kwargs)
