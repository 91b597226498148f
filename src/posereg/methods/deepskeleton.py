"""DeepSkeleton's two LightningModules (Wan et al., arXiv 1711.10796), chosen by `method.module._target_`.

* `SkeletonMapModule` (stage 1): trains `posereg.nets.skeleton_fcn.SkeletonFCN`; its outputs have no pose
  (NaN coords), so evaluation draws GT skeleton maps and updates map metrics (`method.module.map_metric`,
  e.g. `posereg.metrics.skeleton.SkeletonMapMetric`) per evaluated output instead of `data.metrics`.
* `SkeletonRegressionModule` (stage 2): trains `posereg.nets.skeleton_regressor.SkeletonRegressor` on the
  input chosen by `method.input.source`: `gt` (maps drawn from the labels on the fly and handed to the
  network), `predicted` (the network runs the frozen FCN of a finished stage-1 run, `method.input.stage1_run`,
  loaded safely and attached to it) or `rgb` (the crop itself: the paper's "direct RGB" baseline).
  `method.input.eval_source` evaluates another input than the one trained on (e.g. train on GT maps, test on
  predicted ones).

Flip testing is refused where GT maps are drawn (a mirrored skeleton map is not the map of the mirrored
pose: left and right bones have their own colours); on predicted maps and RGB it is the usual flip of
the crop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from omegaconf import OmegaConf

from posereg.config import instantiate
from posereg.data.datamodule import DataInfo
from posereg.errors import ConfigError
from posereg.methods.build import build_net
from posereg.methods.initial_weights import without_initial_weights
from posereg.methods.pose_module import Batch, PoseModule
from posereg.metrics.skeleton import METRIC_NAMES, SkeletonMapSpec
from posereg.nets.skeleton_fcn import SkeletonFCN
from posereg.nets.skeleton_regressor import SOURCES
from posereg.runs.files import CHECKPOINTS
from posereg.runs.open import open_run

STAGE1 = "method.input.stage1_run"


class SkeletonMapModule(PoseModule):
    """Stage 1: skeleton-map FCN trained with the map loss, evaluated with map metrics (no pose)."""

    def __init__(self, *args: Any, map_metric: Mapping[str, Any], **kwargs: Any):
        if kwargs.get("flip_test"):
            raise ConfigError("flip_test=true: a mirrored skeleton map is not the map of the mirrored pose "
                              "(bone colours are per side); use flip_test=false for DeepSkeleton")
        monitor = kwargs.get("monitor")
        if monitor is not None and monitor.split("/", 1)[-1].split("@")[0] not in METRIC_NAMES:
            raise ConfigError(f"data.monitor={monitor}: stage 1 (skeleton maps) reports map metrics only; set "
                              "data.monitor=val/skel_iou_fg data.monitor_mode=max (the deepskeleton_*_maps presets "
                              "do)")
        kwargs["metric_factory"] = lambda: {"skeleton": instantiate(map_metric)}
        super().__init__(*args, **kwargs)

    def _eval_step(self, stage: str, batch: Batch) -> None:
        """Accumulate the loss and update the map metrics of every evaluated output."""
        outputs = self.eval_forward(batch["image"])
        bs = batch["image"].shape[0]
        self.eval_loss[stage].update(self.compute_loss(outputs, batch)["total"].detach().float(), weight=bs)
        for i in self.eval_indices:
            for metric in self.metrics[stage][f"o{i}"].values():
                metric.update_from_batch({"skeleton_logits": outputs[i]["skeleton_logits"]}, batch)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """The cut output's maps in [0,1] (B,6,h,w) beside the (NaN) decoded coordinates."""
        outputs = self.eval_forward(batch["image"])
        preds = self.codec.decode(outputs[self.cut_index]["coords"], batch)
        preds["skeleton_maps"] = outputs[self.cut_index]["skeleton_logits"].float().sigmoid()
        return preds


def load_stage1(run_dir: str | None, joint_set: str, input_size: int, spec: SkeletonMapSpec, which: str = "best",
                trust: bool = False) -> SkeletonFCN:
    """The frozen, eval-mode FCN of a finished stage-1 run; its setup is checked against this run's first."""
    if run_dir in (None, ""):
        raise ConfigError(f"{STAGE1} is required for method.input.source=predicted: give a finished "
                          "deepskeleton_*_maps run directory")
    if which not in CHECKPOINTS:
        raise ConfigError(f"method.input.stage1_checkpoint={which!r}: use best or last")
    opened = open_run(str(run_dir), which, trust=trust, setting=STAGE1)
    cfg = opened.cfg
    target = str(OmegaConf.select(cfg, "method.net._target_", default=""))
    if not target.endswith("SkeletonFCN"):
        raise ConfigError(f"{STAGE1}={run_dir}: its network is {target or 'unknown'}, not the stage-1 skeleton-map "
                          "FCN (a deepskeleton_*_maps run)")
    theirs = (str(cfg.data.joint_set), int(cfg.data.input_size))
    if theirs[0] != joint_set:
        raise ConfigError(f"{STAGE1}={run_dir}: stage 1 was trained on joint set {theirs[0]}, this run uses "
                          f"{joint_set} (data.joint_set)")
    if theirs[1] != int(input_size):
        raise ConfigError(f"{STAGE1}={run_dir}: stage 1 was trained on {theirs[1]}² crops, this run uses "
                          f"{input_size}² (data.input_size)")
    their_spec = SkeletonMapSpec.from_settings(theirs[0], theirs[1], OmegaConf.select(cfg, "method.skeleton"))
    if their_spec != spec:
        raise ConfigError(f"{STAGE1}={run_dir}: stage 1 drew other skeleton maps ({their_spec}) than this run's "
                          f"method.skeleton ({spec}); pair the runs of one configuration")
    info = DataInfo(joint_set=theirs[0], input_size=theirs[1], has_2d=True,
                    has_3d=int(OmegaConf.select(cfg, "data.dims", default=2) or 2) == 3,
                    depth_range=float(cfg.data.get("depth_range", 2000.0)), dataset_names=tuple(cfg.data.sources))
    net = opened.load_into(build_net(without_initial_weights(cfg), info), prefix="net.")  # all from stage 1
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class SkeletonRegressionModule(PoseModule):
    """Stage 2: pose regression from skeleton maps (GT or predicted) or RGB (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        source: str,
        skeleton: Mapping[str, Any],
        joint_set: str,
        input_size: int,
        eval_source: str | None = None,
        stage1_run: str | None = None,
        stage1_checkpoint: str = "best",
        trust_checkpoints: bool = False,
        **kwargs: Any,
    ):
        eval_source = source if eval_source is None else eval_source
        for setting, value in (("source", source), ("eval_source", eval_source)):
            if value not in SOURCES:
                raise ConfigError(f"method.input.{setting}={value!r} unknown: use one of {', '.join(SOURCES)}")
        if (source == "rgb") != (eval_source == "rgb"):
            raise ConfigError(f"method.input.eval_source={eval_source} and source={source}: RGB and skeleton maps "
                              "need different networks (3 vs 6 input channels)")
        if kwargs.get("flip_test") and eval_source == "gt":
            raise ConfigError("flip_test=true: a mirrored GT skeleton map is not the map of the mirrored pose "
                              "(bone colours are per side); use flip_test=false with method.input.eval_source=gt")
        super().__init__(*args, **kwargs)
        self.source, self.eval_source = source, eval_source
        self.spec = SkeletonMapSpec.from_settings(joint_set, input_size, skeleton)
        if "predicted" in (source, eval_source):
            self.net.attach_stage1(load_stage1(stage1_run, str(joint_set), int(input_size), self.spec,
                                               stage1_checkpoint, trust_checkpoints))
        self._maps: torch.Tensor | None = None

    @contextmanager
    def _inputs(self, batch: Batch, source: str) -> Iterator[None]:
        """For one step: the GT maps of the batch when `source` is gt (the network draws the others itself)."""
        self._maps = self.spec.render(batch)[0].to(batch["image"].dtype) if source == "gt" else None
        try:
            yield
        finally:
            self._maps = None

    def forward(self, image: torch.Tensor) -> list[dict[str, Any]]:
        """The network's outputs on the crop (or on this step's GT maps)."""
        return self.net(image, maps=self._maps)

    def eval_forward(self, image: torch.Tensor) -> list[dict[str, Any]]:
        """Outputs for evaluation, on the crop (or on this step's GT maps)."""
        return self.net(image, cut=self.cut.stop, maps=self._maps)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """The generic step on `method.input.source`."""
        with self._inputs(batch, self.source):
            return super().training_step(batch, batch_idx)

    def _eval_step(self, stage: str, batch: Batch) -> None:
        """The generic evaluation on `method.input.eval_source`."""
        with self._inputs(batch, self.eval_source):
            super()._eval_step(stage, batch)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """Decoded prediction from `method.input.eval_source`."""
        with self._inputs(batch, self.eval_source):
            return super().predict_step(batch, batch_idx)
