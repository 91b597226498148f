"""The generic pose LightningModule: network + codec + loss (+ schedule) + metrics, all from config."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from posereg.codecs import CoordinateCodec
from posereg.errors import ConfigError
from posereg.losses import PoseLoss
from posereg.methods.root_depth import RootDepthEstimator
from posereg.methods.schedule import LossSchedule
from posereg.nets.contract import PoseNet
from posereg.nets.cut import parse_cut
from posereg.ops import average_flip, flip_coords_unit

Batch = dict[str, Any]
MetricFactory = Callable[[], dict[str, nn.Module]]


def _is_logged_scalar(name: str, value: Any) -> bool:
    """True for headline scalars; curves and per-part / per-action breakdowns (`/` in the name) are extras."""
    if "/" in name or "_curve" in name:
        return False
    return isinstance(value, int | float) or (torch.is_tensor(value) and value.numel() == 1)


def _plain(value: Any) -> Any:
    """Tensors and nested containers as python lists / numbers (for metrics.json extras)."""
    if torch.is_tensor(value):
        return value.detach().cpu().tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class PoseModule(L.LightningModule):
    """Train any network that returns `list[dict]` outputs; evaluate the `cut` output(s) with the metrics."""

    def __init__(
        self,
        net: PoseNet,
        loss: PoseLoss,
        codec: CoordinateCodec,
        schedule: LossSchedule,
        metric_factory: MetricFactory | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        cut: int | str | None = None,
        flip_test: bool = False,
        flip_index: Sequence[int] | None = None,
        monitor: str | None = None,
        root_depth: RootDepthEstimator | None = None,
    ):
        super().__init__()
        self.net = net
        self.loss = loss
        self.codec = codec
        self.schedule = schedule
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.flip_test = bool(flip_test)
        if self.flip_test and flip_index is None:
            raise ConfigError("flip_test=true needs the joint set's flip_index")
        self.flip_index = list(flip_index) if flip_index is not None else None
        self.monitor = monitor
        names = list(net.output_names)
        self.output_names = names
        self.cut = parse_cut(cut, names, net.cut_aliases)
        self.cut_all = self.cut.all
        self.cut_index, self.eval_indices = self.cut.index, list(self.cut.evaluated)
        factory = metric_factory or (lambda: {})
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({f"o{i}": nn.ModuleDict(factory()) for i in self.eval_indices})
                for stage in ("val", "test")
            }
        )
        # the evaluation loss as a sample-weighted mean that reduces exactly across DDP ranks
        self.eval_loss = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self.root_depth = root_depth
        if root_depth is not None and not self.cut_all and root_depth.feature_index > self.cut_index:
            raise ConfigError(
                f"method.root_depth.features={names[root_depth.feature_index]} comes after the cut "
                f"{names[self.cut_index]}: pick an earlier output or a later cut"
            )
        self.final_extras: dict[str, dict[str, Any]] = {}

    def forward(self, image: torch.Tensor) -> list[dict[str, Any]]:
        """The network's outputs, in execution order."""
        return self.net(image)

    def eval_forward(self, image: torch.Tensor) -> list[dict[str, Any]]:
        """Outputs for evaluation: the network stops at the cut output (early exit)."""
        return self.net(image, cut=self.cut.stop)

    def loss_weights(self, epoch: int | None = None) -> dict[str, float]:
        """Loss-term weights in effect for `epoch` (default: the current epoch)."""
        return self.schedule.at(self.current_epoch if epoch is None else epoch)

    def compute_loss(self, outputs: list[dict[str, Any]], batch: Batch, epoch: int | None = None) -> dict[str, Any]:
        """Named loss terms and `total` for `outputs` against the batch's targets."""
        return self.loss(outputs, self.codec.encode(batch), self.loss_weights(epoch))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Sum of the active loss terms over all outputs; logs `train/loss` and `train/loss_<term>`."""
        outputs = self(batch["image"])
        losses = self.compute_loss(outputs, batch)
        if self.root_depth is not None:
            losses["root_depth"] = self.root_depth.loss(self.root_depth(outputs, batch["camera"]), batch)
            losses["total"] = losses["total"] + self.root_depth.weight * losses["root_depth"]
        bs = batch["image"].shape[0]
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=bs)
        for name, value in losses.items():
            if name != "total":
                self.log(f"train/loss_{name}", value, batch_size=bs)
        return losses["total"]

    @torch.no_grad()
    def predict_coords(self, image: torch.Tensor) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
        """Outputs and their unit coords, averaged with the flipped input's when `flip_test` is on."""
        outputs = self.eval_forward(image)
        coords = [o["coords"] for o in outputs]
        if self.flip_test:
            flipped = self.eval_forward(image.flip(-1))
            coords = [
                average_flip(c, flip_coords_unit(f["coords"], self.flip_index))
                for c, f in zip(coords, flipped, strict=True)
            ]
        return outputs, coords

    def _eval_step(self, stage: str, batch: Batch) -> None:
        """Decode the evaluated outputs to image/camera space and update that stage's metrics."""
        outputs, coords = self.predict_coords(batch["image"])
        bs = batch["image"].shape[0]
        self.eval_loss[stage].update(self.compute_loss(outputs, batch)["total"].detach().float(), weight=bs)
        decoding = batch
        if self.root_depth is not None:
            root = self.root_depth(outputs, batch["camera"])
            self.root_depth.update_error(stage, root, batch)
            decoding = self.root_depth.decoding_batch(root, batch)
        for i in self.eval_indices:
            preds = self.codec.decode(coords[i], decoding)
            for metric in self.metrics[stage][f"o{i}"].values():
                metric.update_from_batch(preds, batch)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """Update validation metrics."""
        self._eval_step("val", batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        """Update test metrics."""
        self._eval_step("test", batch)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """Decoded prediction of the cut output (crop/image pixels, camera mm)."""
        outputs, coords = self.predict_coords(batch["image"])
        if self.root_depth is not None:
            batch = self.root_depth.decoding_batch(self.root_depth(outputs, batch["camera"]), batch)
        return self.codec.decode(coords[self.cut_index], batch)

    def _finish(self, stage: str) -> None:
        """Compute, log (scalars, `sync_dist`) and reset the metrics; keep curves etc. in `final_extras`."""
        extras: dict[str, Any] = {}
        self.log(f"{stage}/loss", float(self.eval_loss[stage].compute()), sync_dist=True)
        self.eval_loss[stage].reset()
        for i in self.eval_indices:
            suffixes = [""] if i == self.cut_index else []
            if self.cut_all:
                suffixes.append(f"@{self.output_names[i]}")
            seen: dict[str, str] = {}
            for metric_name, metric in self.metrics[stage][f"o{i}"].items():
                for key, value in metric.compute().items():
                    # Lightning would silently average two metrics logging one name
                    if key in seen:
                        raise ConfigError(f"data.metrics.{metric_name} and data.metrics.{seen[key]} both report "
                                          f"{key!r}: rename or drop one of them")
                    seen[key] = metric_name
                    for suffix in suffixes:
                        if _is_logged_scalar(key, value):
                            self.log(f"{stage}/{key}{suffix}", float(value), sync_dist=True)
                        else:
                            extras[f"{key}{suffix}"] = _plain(value)
                metric.reset()
        if self.root_depth is not None:
            error = self.root_depth.errors[stage]
            with warnings.catch_warnings():
                # every rank computes (the compute syncs under DDP), also one whose split had no 3D root
                warnings.filterwarnings("ignore", message=".*before the ``update``.*")
                value = float(error.compute())
            if math.isfinite(value):
                self.log(f"{stage}/root_depth_error", value, sync_dist=True)
            error.reset()
        self.final_extras[stage] = extras

    def on_validation_epoch_end(self) -> None:
        """Log validation metrics."""
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        """Log test metrics."""
        self._finish("test")

    def configure_optimizers(self) -> Any:
        """Optimizer (and epoch-wise LR scheduler) from the config's `_partial_` factories."""
        if self.optimizer_factory is None:
            raise ConfigError("method.optimizer is missing: give a _partial_ optimizer such as torch.optim.Adam")
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        lr_cfg: dict[str, Any] = {"scheduler": sched, "interval": "epoch"}
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            lr_cfg["monitor"] = self.monitor or "val/loss"
        return {"optimizer": opt, "lr_scheduler": lr_cfg}
