"""Coordinate and heat-map losses with per-joint, per-axis weights from `batch["weights"]`.

Normalization follows the authors' `weighted_mse.py`: every loss is a sum over joints (and axes) of the
weighted per-joint terms divided by the batch size, never by the joint count. Heat-map terms are per
joint: the MSE and BCE are means over the map's cells; the CE is over one softmax of all H*W (D*H*W) cells.

Heat-map space (`heatmap_space`): `logits` (H1/H2/H3, the usual) compares the raw maps with the targets;
`prob` (our default for I1) compares the softmax-normalized map -- the very distribution the integral takes
the expectation of -- with a Gaussian normalized to sum 1, as a sum of squares over cells. An MSE on raw
maps pulls them towards peak-1 Gaussians whose softmax is nearly flat, which fights the joint loss; on
`prob` both losses agree (the target's expectation is the joint).

Mixed 2D/3D batches: a 2D-only joint has z weight 0, so the coordinate loss has no z term for it; on a
volume its heat-map loss is applied to the z-marginal (the sum over depth of the map for MSE, the
log-sum-exp over depth of the logits for the softmax CE), so it constrains where in the image the joint
is and nothing about its depth (the paper's "2D data on both heat map and joint losses", §5.3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posereg.codecs import CoordTargets, HeatmapCodec, HeatmapTargets
from posereg.errors import ConfigError
from posereg.ops import spatial_softmax

COORD_KINDS = ("l1", "l2", "elastic")
HEATMAP_SPACES = ("logits", "prob")
CONF_KINDS = ("bce",)
HEATMAP_LOSSES = {"mse": "gaussian", "ce": "onehot", "bce": "disk"}


def coord_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """sum(f(pred - target) * weights) / batch, f = |.| (l1), (.)^2 (l2) or |.| + (.)^2 (elastic net)."""
    d = pred - target
    if kind == "l1":
        per = d.abs()
    elif kind == "l2":
        per = d.square()
    elif kind == "elastic":
        per = d.abs() + d.square()
    else:
        raise ConfigError(f"method.loss.coord={kind!r} unknown: use one of {', '.join(COORD_KINDS)}")
    return (per * weights).sum() / pred.shape[0]


def conf_loss(conf_logits: torch.Tensor, coords: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Joint-presence BCE (SSP-Net eq. 12, Luvizon'17) summed over joints / batch.

    Target 1 for a labelled joint inside the crop (unit x, y in [0, 1)), 0 for a joint outside it;
    joints with no 2D label that sit inside the crop (unmapped, unannotated) are left out.
    """
    labelled = weights[..., :2].amin(dim=-1) > 0
    inside = ((coords[..., :2] >= 0) & (coords[..., :2] < 1)).all(dim=-1) & torch.isfinite(coords[..., :2]).all(-1)
    target = (labelled & inside).to(conf_logits.dtype)
    mask = (labelled | ~inside).to(conf_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(conf_logits.float(), target.float(), reduction="none")
    return (bce * mask).sum() / conf_logits.shape[0]


def mse_per_joint(maps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,J) mean squared error over the cells of each map."""
    return (maps.float() - target).square().flatten(2).mean(-1)


def ce_per_joint(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B,J) cross-entropy of one softmax over all cells against a flat target index (-1: zero loss)."""
    logp = torch.log_softmax(logits.float().flatten(2), dim=-1)
    nll = -logp.gather(-1, index.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return nll * (index >= 0).to(nll.dtype)


def bce_per_joint(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,J) per-cell binary cross-entropy with logits, averaged over the cells of each map."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return bce.flatten(2).mean(-1)


_PER_JOINT: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse_per_joint,
    "ce": ce_per_joint,
    "bce": bce_per_joint,
}


def prob_sse_per_joint(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,J) sum over cells of squared differences between normalized maps."""
    return (prob - target).square().flatten(2).sum(-1)


def z_marginal(maps: torch.Tensor, kind: str) -> torch.Tensor:
    """Project (B,J,D,H,W) maps to (B,J,H,W) the way `kind` reads them: sum (mse, prob) or log-sum-exp (ce)."""
    if kind in ("mse", "prob"):
        return maps.sum(dim=2)
    if kind == "ce":
        return torch.logsumexp(maps.float(), dim=2)
    raise ConfigError(f"heat-map loss {kind!r} has no 3D definition: use mse (H1) or ce (H2) for 3D data")


def heatmap_loss(maps: torch.Tensor, targets: HeatmapTargets, kind: str, space: str = "logits") -> torch.Tensor:
    """Weighted heat-map loss summed over joints / batch; volumes add the z-marginal term of 2D joints."""
    if kind not in _PER_JOINT:
        raise ConfigError(f"method.loss.heatmap={kind!r} unknown: use one of {', '.join(_PER_JOINT)}")
    if space not in HEATMAP_SPACES:
        raise ConfigError(f"method.loss.heatmap_space={space!r} unknown: use one of {', '.join(HEATMAP_SPACES)}")
    per = _PER_JOINT[kind]
    if space == "prob":
        if kind != "mse":
            raise ConfigError("method.loss.heatmap_space=prob is defined for the Gaussian MSE (H1) only")
        maps, kind, per = spatial_softmax(maps), "prob", prob_sse_per_joint
    total = (per(maps, targets.target) * targets.weight).sum()
    mw = targets.marginal_weight
    if mw is not None and bool((mw > 0).any()):
        total = total + (per(z_marginal(maps, kind), targets.marginal_target) * mw).sum()
    return total / maps.shape[0]


class PoseLoss(nn.Module):
    """Weighted sum over outputs (stages) of the active terms `coord` and `heatmap`."""

    def __init__(
        self,
        coord: str | None = "l1",
        heatmap: str | None = None,
        heatmap_codec: HeatmapCodec | None = None,
        output_weights: Sequence[float] | None = None,
        conf: str | None = None,
        heatmap_space: str = "logits",
    ):
        super().__init__()
        if heatmap_space not in HEATMAP_SPACES:
            raise ConfigError(
                f"method.loss.heatmap_space={heatmap_space!r} unknown: use one of {', '.join(HEATMAP_SPACES)}"
            )
        if heatmap_space == "prob" and heatmap not in (None, "mse"):
            raise ConfigError("method.loss.heatmap_space=prob is defined for heatmap=mse (H1) only")
        if conf is not None and conf not in CONF_KINDS:
            raise ConfigError(f"method.loss.conf={conf!r} unknown: use one of {', '.join(CONF_KINDS)} or null")
        self.conf = conf
        if coord is not None and coord not in COORD_KINDS:
            raise ConfigError(f"method.loss.coord={coord!r} unknown: use one of {', '.join(COORD_KINDS)} or null")
        if heatmap is not None and heatmap not in HEATMAP_LOSSES:
            raise ConfigError(
                f"method.loss.heatmap={heatmap!r} unknown: use one of {', '.join(HEATMAP_LOSSES)} or null"
            )
        if heatmap is not None and heatmap_codec is None:
            raise ConfigError("a heat-map loss needs a heat-map codec (method.codec)")
        self.coord = coord
        self.heatmap = heatmap
        self.heatmap_codec = heatmap_codec
        self.heatmap_space = heatmap_space
        self.output_weights = list(output_weights) if output_weights is not None else None

    @property
    def terms(self) -> list[str]:
        """Names of the terms this loss can compute."""
        kinds = (("coord", self.coord), ("heatmap", self.heatmap), ("conf", self.conf))
        return [n for n, k in kinds if k is not None]

    def forward(
        self, outputs: list[dict[str, Any]], targets: CoordTargets, weights: dict[str, float]
    ) -> dict[str, torch.Tensor]:
        """`{"total", "<term>", "<term>@<output>"...}` for terms with a non-zero weight in `weights`."""
        active = [t for t in self.terms if float(weights.get(t, 0.0)) != 0.0]
        result: dict[str, torch.Tensor] = {}
        total = outputs[0]["coords"].new_zeros(())
        hm_cache: dict[tuple[int, ...], HeatmapTargets] = {}
        for i, out in enumerate(outputs):
            ow = 1.0 if self.output_weights is None else float(self.output_weights[i])
            for term in active:
                value = self._term(term, out, targets, hm_cache)
                if len(outputs) > 1:
                    result[f"{term}@{out['name']}"] = value.detach()
                result[term] = result.get(term, 0.0) + value.detach() * ow
                total = total + float(weights[term]) * ow * value
        result["total"] = total
        return result

    def _term(
        self, term: str, out: dict[str, Any], targets: CoordTargets, cache: dict[tuple[int, ...], HeatmapTargets]
    ) -> torch.Tensor:
        """One loss term for one output."""
        if term == "coord":
            return coord_loss(out["coords"], targets.coords, targets.weights, self.coord)
        if term == "conf":
            if out.get("conf_logits") is None:
                raise ConfigError(f"output {out['name']!r} has no confidence: set method.loss.conf=null")
            return conf_loss(out["conf_logits"], targets.coords, targets.weights)
        maps = out.get("maps")
        if maps is None:
            raise ConfigError(f"output {out['name']!r} has no heat maps: set method.loss.heatmap=null")
        size = tuple(maps.shape[2:])
        if size not in cache:
            cache[size] = self.heatmap_codec.encode(targets, size)
        return heatmap_loss(maps, cache[size], self.heatmap, self.heatmap_space)
