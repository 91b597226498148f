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

Terms are small `LossTerm` classes chosen by config (`method.loss.<name>: {_target_: ...}`; the shipped ones
are in `conf/method/loss/`): `CoordLoss` (L1 / L2 / elastic on unit coordinates), `GaussianHeatmapMSE` (H1),
`OneHotHeatmapCE` (H2), `DiskHeatmapBCE` (H3) and `ConfidenceBCE`. `PoseLoss` sums the weighted terms over
the network's outputs; a new term is one class (docs/extending.md). A heat-map term's `top_k` mines hard
keypoints on the outputs `top_k_outputs` names (CPN's OHKM: each sample's k largest per-joint losses, summed
/ batch).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from posereg.codecs import CoordTargets, HeatmapCodec, HeatmapTargets, input_hw
from posereg.errors import ConfigError, require_int
from posereg.nets.deconv_head import DeconvHead
from posereg.ops import spatial_softmax

COORD_KINDS = ("l1", "l2", "elastic")
HEATMAP_SPACES = ("logits", "prob")


def check_choice(value: str, choices: Sequence[str], setting: str) -> str:
    """`value` if it is one of `choices`, else a ConfigError naming the setting."""
    if value not in choices:
        raise ConfigError(f"{setting}={value!r} unknown: use one of {', '.join(choices)}")
    return value


def coord_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """sum(f(pred - target) * weights) / batch, f = |.| (l1), (.)^2 (l2) or |.| + (.)^2 (elastic net)."""
    check_choice(kind, COORD_KINDS, "method.loss.coord.kind")
    d = pred - target
    per = {"l1": d.abs, "l2": d.square, "elastic": lambda: d.abs() + d.square()}[kind]()
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


def heatmap_loss_per_joint(maps: torch.Tensor, targets: HeatmapTargets, kind: str, space: str = "logits"
                           ) -> torch.Tensor:
    """(B,J) weighted heat-map loss of each joint; volumes add the z-marginal term of 2D joints.

    `kind` is mse | ce | bce; `space="prob"` (mse only) compares the softmax-normalized maps.
    """
    per = _PER_JOINT[kind]
    if space == "prob":
        maps, kind, per = spatial_softmax(maps), "prob", prob_sse_per_joint
    loss = per(maps, targets.target) * targets.weight
    mw = targets.marginal_weight
    if mw is not None and bool((mw > 0).any()):
        loss = loss + per(z_marginal(maps, kind), targets.marginal_target) * mw
    return loss


def hardest_joints(per_joint: torch.Tensor, k: int) -> torch.Tensor:
    """(B,k) the k largest of each sample's per-joint losses (B,J): online hard keypoint mining (CPN)."""
    if not 1 <= k <= per_joint.shape[1]:
        raise ConfigError(f"top_k={k}: online hard keypoint mining keeps 1..{per_joint.shape[1]} joints")
    return per_joint.topk(k, dim=1).values


def heatmap_loss(maps: torch.Tensor, targets: HeatmapTargets, kind: str, space: str = "logits",
                 top_k: int | None = None) -> torch.Tensor:
    """Weighted heat-map loss summed over joints / batch (over each sample's `top_k` hardest joints when set)."""
    per = heatmap_loss_per_joint(maps, targets, kind, space)
    return (per if top_k is None else hardest_joints(per, top_k)).sum() / maps.shape[0]


class LossTerm(nn.Module, abc.ABC):
    """One loss term, evaluated on every network output; `weight` is its weight in joint training."""

    #: the output key the term reads (a ConfigError names it when a network does not provide it)
    needs: ClassVar[str] = "coords"

    def __init__(self, weight: float):
        super().__init__()
        self.weight = float(weight)

    def forward(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        """The term's value for one output; `cache` lives for one step (shared rendered targets)."""
        if output.get(self.needs) is None:
            raise ConfigError(f"output {output.get('name')!r} has no {self.needs!r}: "
                              f"{type(self).__name__} cannot apply to this network")
        return self.value(output, targets, cache)

    @abc.abstractmethod
    def value(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        """The term itself, for one output whose `needs` key is present."""

    def prepare(self, net: nn.Module) -> None:
        """Adjust a freshly built network for this term (default: nothing)."""


class CoordLoss(LossTerm):
    """Per-axis weighted L1 / L2 / elastic-net loss on unit coordinates (Sun et al.; Luvizon's elastic net)."""

    def __init__(self, kind: str, weight: float):
        super().__init__(weight)
        self.kind = check_choice(kind, COORD_KINDS, "method.loss.coord.kind")

    def value(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        return coord_loss(output["coords"], targets.coords, targets.weights, self.kind)


class ConfidenceBCE(LossTerm):
    """Joint-presence BCE on `conf_logits` (SSP-Net eq. 12, Luvizon'17)."""

    needs = "conf_logits"

    def value(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        return conf_loss(output["conf_logits"], targets.coords, targets.weights)


class HeatmapLoss(LossTerm):
    """A heat-map term: renders its targets (on the maps' grid, cached per step and size) and compares.

    `top_k` applies online hard keypoint mining to the outputs named in `top_k_outputs` (every output when
    None): only the k largest per-joint losses of each sample count there (CPN's RefineNet).
    """

    needs = "maps"
    loss_kind: ClassVar[str]
    target_kind: ClassVar[str]

    def __init__(self, weight: float, ramp: str, input_size: Any, sigma: float = 1.0, radius: float = 15.0,
                 space: str = "logits", top_k: int | None = None, top_k_outputs: Sequence[str] | None = None):
        super().__init__(weight)
        self.space = check_choice(space, HEATMAP_SPACES, "method.loss.heatmap.space")
        self.codec = HeatmapCodec(self.target_kind, input_size, ramp=ramp, sigma=sigma, radius=radius,
                                  normalize=self.space == "prob")
        self.top_k = None if top_k is None else require_int(top_k, "top_k", 1)
        self.top_k_outputs = None if top_k_outputs is None else [str(n) for n in top_k_outputs]

    def value(self, output: dict[str, Any], targets: CoordTargets, cache: dict[Any, Any]) -> torch.Tensor:
        maps = output["maps"]
        key = (type(self).__name__, self.space, tuple(maps.shape[2:]))
        if key not in cache:
            cache[key] = self.codec.encode(targets, maps.shape[2:])
        mined = self.top_k_outputs is None or output["name"] in self.top_k_outputs
        return heatmap_loss(maps, cache[key], self.loss_kind, self.space, self.top_k if mined else None)

    def prepare(self, net: nn.Module) -> None:
        """Refuse mining an output the network does not have."""
        names = list(getattr(net, "output_names", []))
        for name in self.top_k_outputs or []:
            if name not in names:
                raise ConfigError(f"top_k_outputs names output {name!r}, which {type(net).__name__} does not have "
                                  f"({', '.join(names)})")


class GaussianHeatmapMSE(HeatmapLoss):
    """H1: MSE to Gaussians of `sigma` cells; `space="prob"` compares softmax maps with sum-1 Gaussians (I1)."""

    loss_kind, target_kind = "mse", "gaussian"

    def __init__(self, weight: float, ramp: str, input_size: Any, sigma: float, space: str,
                 top_k: int | None = None, top_k_outputs: Sequence[str] | None = None):
        super().__init__(weight, ramp, input_size, sigma=sigma, space=space, top_k=top_k, top_k_outputs=top_k_outputs)


class OneHotHeatmapCE(HeatmapLoss):
    """H2: cross-entropy of one softmax over all cells against the joint's cell."""

    loss_kind, target_kind = "ce", "onehot"

    def __init__(self, weight: float, ramp: str, input_size: Any, top_k: int | None = None,
                 top_k_outputs: Sequence[str] | None = None):
        super().__init__(weight, ramp, input_size, top_k=top_k, top_k_outputs=top_k_outputs)


class DiskHeatmapBCE(HeatmapLoss):
    """H3: per-cell BCE against a disk of `radius` input pixels (DeeperCut); 2D maps only."""

    loss_kind, target_kind = "bce", "disk"

    def __init__(self, weight: float, ramp: str, input_size: Any, radius: float, top_k: int | None = None,
                 top_k_outputs: Sequence[str] | None = None):
        super().__init__(weight, ramp, input_size, radius=radius, top_k=top_k, top_k_outputs=top_k_outputs)
        h, w = input_hw(input_size)
        self.prior = math.pi * float(radius) ** 2 / (h * w)

    def prepare(self, net: nn.Module) -> None:
        """Start every deconv head's output bias at logit(prior), the fraction of positive cells of a disk.

        The per-cell BCE then starts at the prior instead of p = 0.5 everywhere (as in focal-loss detectors);
        a constant shift does not change the softmax, so the integral of I3 starts unchanged.
        """
        super().prepare(net)
        p = min(max(self.prior, 1e-4), 0.5)
        for module in net.modules():
            if isinstance(module, DeconvHead):
                nn.init.constant_(module.final.bias, math.log(p / (1 - p)))


class PoseLoss(nn.Module):
    """Weighted sum over outputs (stages) of the active terms."""

    def __init__(self, terms: dict[str, LossTerm], output_weights: Sequence[float] | None = None):
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.output_weights = list(output_weights) if output_weights is not None else None

    def forward(
        self, outputs: list[dict[str, Any]], targets: CoordTargets, weights: dict[str, float]
    ) -> dict[str, torch.Tensor]:
        """`{"total", "<term>", "<term>@<output>"...}` for terms with a non-zero weight in `weights`."""
        active = [t for t in self.terms if float(weights.get(t, 0.0)) != 0.0]
        result: dict[str, torch.Tensor] = {}
        total = outputs[0]["coords"].new_zeros(())
        cache: dict[Any, Any] = {}
        for i, out in enumerate(outputs):
            ow = 1.0 if self.output_weights is None else float(self.output_weights[i])
            for name in active:
                value = self.terms[name](out, targets, cache)
                if len(outputs) > 1:
                    result[f"{name}@{out['name']}"] = value.detach()
                result[name] = result.get(name, 0.0) + value.detach() * ow
                total = total + float(weights[name]) * ow * value
        result["total"] = total
        return result
