"""DeepSkeleton skeleton-map metrics (IoU of the bone masks, per-pixel error) and the GT maps they compare with.

`SkeletonMapSpec` says how ground-truth maps are drawn from a batch (bones, colours, stick width per map
resolution); the stage-1 loss (`posereg.losses.skeleton`), this metric and the stage-2 `gt` input
(`posereg.methods.deepskeleton`) share it, so the three always draw the same maps.

Stick width scales with the map: `width` is in pixels of a `map_size` map (default: input / 4, the FCN's
finest output, 56² at 224²), so a 28² intermediate output is drawn with width / 2.

Map metrics (``update_from_batch(preds, batch)`` reads ``preds["skeleton_maps"]`` (B,6,h,w) in [0,1], or
``preds["skeleton_logits"]``; channels 0-2 foreground, 3-5 background):

* ``skel_iou_fg`` / ``skel_iou_bg``: IoU (percent) of the bone masks, a pixel being "bone" when its largest
  colour channel is >= `threshold` (0.25: every palette colour has a channel >= 0.5, so a GT pixel is in
  the mask when at least half covered by a bone), pooled over all pixels of the set (sum of
  intersections / sum of unions);
* ``skel_mae_fg`` / ``skel_mae_bg``: mean absolute per-pixel, per-channel error, in percent of the colour
  range.

Background values pool only samples with a depth order (2D-only samples have no true background map);
NaN when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from posereg.errors import ConfigError
from posereg.metrics import batch as mb
from posereg.ops.skeleton_map import ORDERS, default_bone_colors, render_skeleton_maps, skeleton_bones

METRIC_NAMES = ("skel_iou_fg", "skel_iou_bg", "skel_mae_fg", "skel_mae_bg")
_SPEC_KEYS = ("width", "map_size", "antialias", "order", "root")


def _side(size: Any, setting: str) -> int:
    """The side of a square size (int or equal pair); ConfigError otherwise."""
    sides = [size] if not isinstance(size, list | tuple) else list(size)
    if not sides or len({int(s) for s in sides}) != 1 or int(sides[0]) <= 0:
        raise ConfigError(f"{setting}={size!r}: give one positive side (square maps and crops)")
    return int(sides[0])


@dataclass(frozen=True)
class SkeletonMapSpec:
    """How GT skeleton maps are drawn for a joint set and crop size (see the module docstring)."""

    joint_set: str
    input_size: int
    width: float = 3.0
    map_size: int | None = None
    antialias: bool = True
    order: str = "depth"
    root: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", _side(self.input_size, "data.input_size"))
        if self.map_size is not None:
            object.__setattr__(self, "map_size", _side(self.map_size, "method.skeleton.map_size"))
        if not float(self.width) > 0:
            raise ConfigError(f"method.skeleton.width={self.width}: the stick width must be > 0 map pixels")
        if self.order not in ORDERS:
            raise ConfigError(f"method.skeleton.order={self.order!r}: use one of {', '.join(ORDERS)}")
        default_bone_colors(len(self.bones))  # ConfigError for a joint set with too many bones

    @classmethod
    def from_settings(cls, joint_set: str, input_size: Any, skeleton: Mapping[str, Any] | None) -> SkeletonMapSpec:
        """The spec of a `method.skeleton` node (width, map_size, antialias, order, root)."""
        settings = dict(skeleton or {})
        unknown = sorted(set(settings) - set(_SPEC_KEYS))
        if unknown:
            raise ConfigError(f"method.skeleton has unknown keys {unknown}; valid: {', '.join(_SPEC_KEYS)}")
        return cls(str(joint_set), input_size, **settings)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """The drawn bones, (parent, child) in the joint set's order."""
        return skeleton_bones(self.joint_set, self.root)

    @property
    def reference_size(self) -> int:
        """The map side at which `width` is given (input / 4 unless `map_size`)."""
        return self.map_size if self.map_size is not None else max(self.input_size // 4, 1)

    def width_at(self, side: int) -> float:
        """Stick width in pixels of a map of side `side`."""
        return float(self.width) * side / self.reference_size

    def render(self, batch: Mapping[str, Any], side: int | None = None) -> tuple[Tensor, Tensor]:
        """(B,6,h,w) fg+bg GT maps of a batch at `side` (default: the reference size) and (B,) depth-order flags."""
        side = self.reference_size if side is None else int(side)
        j2d = mb.require(batch, "joints_2d", "skeleton map")
        weights = mb.require(batch, "weights", "skeleton map")
        j3d = batch.get("joints_3d")
        depth = j3d[..., 2] if j3d is not None else None
        colors = default_bone_colors(len(self.bones), device=j2d.device)
        maps = render_skeleton_maps(j2d, depth, weights, self.bones, colors, size=side, input_size=self.input_size,
                                    width=self.width_at(side), antialias=self.antialias, order=self.order)
        return torch.cat([maps.foreground, maps.background], dim=1), maps.has_depth_order


def skeleton_map_counts(pred: Tensor, target: Tensor, ordered: Tensor, threshold: float = 0.25) -> Tensor:
    """(8,) float64 sums: fg/bg intersections, unions, absolute errors and cells, for (B,6,h,w) maps in [0,1].

    Order: inter_fg, union_fg, abs_fg, cells_fg, inter_bg, union_bg, abs_bg, cells_bg. Background sums use
    only the samples with `ordered` True.
    """
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 6:
        raise ConfigError(f"skeleton map metric: expected (B,6,h,w) maps and targets, got {tuple(pred.shape)} "
                          f"and {tuple(target.shape)}")
    pred, target = pred.detach().double(), target.detach().double()
    out = []
    for part, keep in ((slice(0, 3), torch.ones_like(ordered, dtype=torch.bool)), (slice(3, 6), ordered.bool())):
        p, t = pred[keep, part], target[keep, part]
        pm, tm = p.amax(dim=1) >= threshold, t.amax(dim=1) >= threshold
        out += [(pm & tm).sum(), (pm | tm).sum(), (p - t).abs().sum(), torch.tensor(float(t.numel()))]
    return torch.stack([v.double().to(pred.device) for v in out])


class SkeletonMapMetric(Metric):
    """IoU of the fg/bg bone masks and per-pixel error of predicted skeleton maps, pooled over a set (percent)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, joint_set: str, input_size: Any, skeleton: Mapping[str, Any] | None = None,
                 threshold: float = 0.25, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = SkeletonMapSpec.from_settings(joint_set, input_size, skeleton)
        if not 0.0 < float(threshold) <= 1.0:
            raise ConfigError(f"SkeletonMapMetric.threshold={threshold}: must be in (0, 1]")
        self.threshold = float(threshold)
        self.add_state("sums", torch.zeros(8, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, ordered: Tensor) -> None:
        """Accumulate (B,6,h,w) predicted maps in [0,1] against GT maps with (B,) depth-order flags."""
        self.sums += skeleton_map_counts(pred, target, ordered, self.threshold)

    def update_from_batch(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Compare preds['skeleton_maps'] (or sigmoid of preds['skeleton_logits']) with GT drawn at their size."""
        maps = preds.get("skeleton_maps")
        if maps is None:
            maps = mb.require(preds, "skeleton_logits", "SkeletonMapMetric").float().sigmoid()
        target, ordered = self.spec.render(batch, maps.shape[-1])
        self.update(maps, target, ordered)

    def compute(self) -> dict[str, Tensor]:
        """skel_iou_fg, skel_iou_bg, skel_mae_fg, skel_mae_bg in percent (NaN where nothing was counted)."""
        s = self.sums
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=s.device)

        def ratio(num: Tensor, den: Tensor) -> Tensor:
            return torch.where(den > 0, 100.0 * num / den.clamp_min(1e-12), nan)

        return {"skel_iou_fg": ratio(s[0], s[1]), "skel_mae_fg": ratio(s[2], s[3]),
                "skel_iou_bg": ratio(s[4], s[5]), "skel_mae_bg": ratio(s[6], s[7])}
