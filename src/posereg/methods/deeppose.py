"""DeepPose's cascade (Toshev & Szegedy, CVPR'14) trained the paper's way: one run per stage, chained by run directory.

A stage-s run (`method=deeppose_cascade method.cascade.stages=s method.cascade.previous_run=<stage s-1 run>`)
builds the s-stage network (`posereg.nets.deeppose.DeepPoseCascade`), loads stages 1..s-1 from the finished
previous run (an R1 run for s = 2, a cascade run of s-1 stages after that; its joint set, input size and crop
settings are checked against this run's), freezes them and trains stage s alone:

* on crops centred on stage s-1's own predictions of the training images, computed on the fly (SynthPose never
  repeats a sample: these are its training-set predictions), and, for a share `simulated_fraction` of the
  labelled joints, on simulated ones: the ground truth displaced by δ ~ N_i^{s-1}, a normal per joint (mean and
  full 2x2 covariance, unit coordinates) fitted to stage s-1's errors on the first `fit_batches` training
  batches before the first step (the paper's D_A^s; a simulated crop's side is sigma * diam of the ground
  truth, as there);
* with the loss of the trained stage only (`compute_loss`): the earlier stages are fixed.

Evaluation runs the whole cascade, each stage on the previous stage's own estimates; `cut=all` reports every
stage (val/pckh@0.5@stage1, ...). The fitted normal is module state, so a resumed run does not refit it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from posereg.data.collate import collate_samples
from posereg.errors import ConfigError, require_int
from posereg.methods.pose_module import Batch, PoseModule
from posereg.nets.deeppose import Boxes, DeepPoseCascade
from posereg.runs.files import CHECKPOINTS
from posereg.runs.open import OpenedRun, open_run

PREVIOUS = "method.cascade.previous_run"
TRUNK_INITS = ("previous", "random")


def fit_normal(errors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-joint mean (J,2) and covariance (J,2,2) of errors (N,J,2) over the samples where mask (N,J) is set.

    A joint seen fewer than twice gets a zero covariance (its displacement is its mean, 0 when never seen).
    """
    m = mask.to(errors.dtype)[..., None]  # (N,J,1)
    n = m.sum(dim=0)  # (J,1)
    mean = (errors * m).sum(dim=0) / n.clamp_min(1)
    centred = (errors - mean) * m
    cov = torch.einsum("nja,njb->jab", centred, centred) / (n - 1).clamp_min(1)[..., None]
    return mean, cov


def sample_normal(mean: torch.Tensor, cov: torch.Tensor, batch: int, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """(batch,J,2) draws of per-joint 2D normals N(mean (J,2), cov (J,2,2))."""
    eye = torch.eye(2, dtype=cov.dtype, device=cov.device)
    chol = torch.linalg.cholesky(cov + 1e-12 * eye)  # the jitter keeps a zero covariance factorable
    z = torch.randn((batch, *mean.shape), dtype=mean.dtype, device=mean.device, generator=generator)
    return mean + torch.einsum("jab,njb->nja", chol, z)


def previous_stages(run_dir: str | None, which: str = "best", trust: bool = False) -> tuple[OpenedRun, int]:
    """The previous stage's run opened (config, checkpoint) and its number of stages; ConfigError unless it is a
    finished R1 or cascade run."""
    if run_dir in (None, ""):
        raise ConfigError(f"{PREVIOUS} is required: a finished run of the previous stage (method=r1 for stage 2, "
                          "a deeppose_cascade run of stages-1 stages after that); scripts/deeppose_grid.sh chains them")
    if which not in CHECKPOINTS:
        raise ConfigError(f"method.cascade.previous_checkpoint={which!r}: use best or last")
    opened = open_run(Path(str(run_dir)).expanduser(), which, trust=trust, setting=PREVIOUS)
    status = opened.run.read_status().get("status")
    if status != "done":
        raise ConfigError(f"{PREVIOUS}={run_dir}: its status is {status or 'unknown'}, not done: finish it first")
    target = str(OmegaConf.select(opened.cfg, "method.net._target_", default=""))
    if target.endswith("RegressionNet"):
        return opened, 1
    if target.endswith("DeepPoseCascade"):
        return opened, int(opened.cfg.method.cascade.stages)
    raise ConfigError(f"{PREVIOUS}={run_dir}: its network is {target or 'unknown'}, not R1 (method=r1) or a "
                      "DeepPose cascade")


def load_previous_stages(net: DeepPoseCascade, run_dir: str | None, which: str, joint_set: str, input_size: int,
                         trust: bool = False) -> None:
    """Load stages 1..S-1 of `net` from the finished previous stage's run, after checking it is that stage."""
    opened, count = previous_stages(run_dir, which, trust)
    cfg = opened.cfg
    want = len(net.output_names) - 1
    if count != want:
        raise ConfigError(f"{PREVIOUS}={run_dir}: it has {count} stage(s); this run (method.cascade.stages="
                          f"{want + 1}) continues a cascade of {want}")
    theirs = {"data.joint_set": str(cfg.data.joint_set), "data.input_size": int(cfg.data.input_size)}
    ours = {"data.joint_set": joint_set, "data.input_size": int(input_size)}
    if count > 1:
        c = cfg.method.cascade
        theirs |= {"method.cascade.sigma": float(c.sigma), "method.cascade.crop_size": int(c.crop_size),
                   "method.cascade.diameter": [tuple(p) for p in c.diameter]}
        ours |= {"method.cascade.sigma": net.sigma, "method.cascade.crop_size": net.crop_size,
                 "method.cascade.diameter": net.diameter}
    for key, value in theirs.items():
        if value != ours[key]:
            raise ConfigError(f"{PREVIOUS}={run_dir}: it ran with {key}={value}, this run with {ours[key]}: "
                              "one cascade has one setting")
    weights = {("stage1." if count == 1 else "") + k: v for k, v in opened.state_dict("net.").items()}
    prefixes = tuple(["stage1."] + [f"refiners.{i}." for i in range(count - 1)])
    expected = {k: v.shape for k, v in net.state_dict().items() if k.startswith(prefixes)}
    bad = sorted(set(expected) ^ set(weights)) or [k for k in expected if weights[k].shape != expected[k]]
    if bad:
        raise ConfigError(f"{PREVIOUS}={run_dir}: its weights do not fit this run's first {count} stage(s) (first "
                          f"difference: {bad[0]}); use the same backbone and method.cascade settings")
    net.load_state_dict(weights, strict=False)


class DeepPoseCascadeModule(PoseModule):
    """Trains the last stage of a DeepPose cascade on the frozen earlier stages' predictions (module docstring)."""

    def __init__(
        self,
        *args: Any,
        previous_run: str | None,
        previous_checkpoint: str,
        simulated_fraction: float,
        fit_batches: int,
        trunk_init: str,
        joint_set: str,
        input_size: int,
        trust_checkpoints: bool = False,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if not isinstance(self.net, DeepPoseCascade):
            raise ConfigError(f"method.module: {type(self).__name__} trains posereg.nets.deeppose.DeepPoseCascade, "
                              f"not {type(self.net).__name__}")
        self.simulated_fraction = float(simulated_fraction)
        if not 0.0 <= self.simulated_fraction <= 1.0:
            raise ConfigError(f"method.cascade.simulated_fraction={simulated_fraction} must be in [0, 1]")
        self.fit_batches = require_int(fit_batches, "method.cascade.fit_batches", 1)
        if trunk_init not in TRUNK_INITS:
            raise ConfigError(f"method.cascade.trunk_init={trunk_init!r}: use one of {', '.join(TRUNK_INITS)}")
        self.trunk_init = trunk_init
        self.previous = (previous_run, previous_checkpoint, str(joint_set), int(input_size), bool(trust_checkpoints))
        self.trained = len(self.output_names) - 1  # index of the stage this run trains
        self.net.freeze(self.trained)
        j = self.net.num_joints
        self.register_buffer("error_mean", torch.zeros(j, 2))
        self.register_buffer("error_cov", torch.zeros(j, 2, 2))
        self.register_buffer("error_fitted", torch.tensor(False))
        self._batch: Batch | None = None

    def setup(self, stage: str) -> None:
        """Before a fit: stages 1..S-1 from the previous run, the trained stage's trunk from stage S-1's when
        `trunk_init` is previous (a resumed fit then restores its own checkpoint over both)."""
        if stage == "fit":
            run, which, joint_set, input_size, trust = self.previous
            load_previous_stages(self.net, run, which, joint_set, input_size, trust)
            if self.trunk_init == "previous":
                self.net.warm_start(self.trained + 1)

    def on_fit_start(self) -> None:
        """Fit N_i^{S-1} to the frozen stages' errors on the first training batches (once per run)."""
        if bool(self.error_fitted):
            return
        dm = self.trainer.datamodule
        loader = DataLoader(dm.dataset("train"), batch_sampler=dm.batch_sampler(), collate_fn=collate_samples)
        errors, masks = [], []
        with torch.no_grad():
            for batch in itertools.islice(loader, self.fit_batches):
                batch = move_data_to_device(batch, self.device)
                prev = self.net(batch["image"], cut=self.trained - 1)[-1]["coords"]
                targets = self.codec.encode(batch)
                errors.append((prev - targets.coords)[..., :2])
                masks.append(targets.weights[..., :2].amin(dim=-1) > 0)
        mean, cov = fit_normal(torch.cat(errors), torch.cat(masks))
        self.error_mean.copy_(mean)
        self.error_cov.copy_(cov)
        self.error_fitted.fill_(True)

    def training_boxes(self, previous: torch.Tensor, image: torch.Tensor) -> Boxes:
        """The trained stage's crops: around the previous estimate, or (simulated) around gt + δ with gt's side."""
        centres, side = self.net.boxes(previous, image)
        if self.simulated_fraction == 0.0 or self._batch is None:
            return centres, side
        targets = self.codec.encode(self._batch)
        gt = targets.coords[..., :2]
        labelled = targets.weights[..., :2].amin(dim=-1) > 0  # (B,J)
        b, j = labelled.shape
        chosen = labelled & (torch.rand(b, j, device=gt.device) < self.simulated_fraction)
        sim_centres, _ = self.net.boxes(gt + sample_normal(self.error_mean, self.error_cov, b).to(gt.dtype), image)
        _, gt_side = self.net.boxes(gt, image)
        torso = labelled[:, self.net.diameter_joints].all(dim=-1, keepdim=True)  # gt's diam needs its joints
        sim_side = torch.where(torso, gt_side, side)
        return torch.where(chosen[..., None], sim_centres, centres), torch.where(chosen, sim_side, side)

    def forward(self, image: torch.Tensor) -> list[dict[str, Any]]:
        """The cascade's outputs; during a training step the last stage's crops follow `training_boxes`."""
        return self.net(image, boxes=self.training_boxes if self._batch is not None else None)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """The generic step, with this batch's labels at hand for the simulated crops."""
        self._batch = batch
        try:
            return super().training_step(batch, batch_idx)
        finally:
            self._batch = None

    def compute_loss(self, outputs: list[dict[str, Any]], batch: Batch, epoch: int | None = None) -> dict[str, Any]:
        """The loss of the trained stage alone; zero when evaluation stops before it (an earlier cut)."""
        trained = outputs[self.trained:]
        if not trained:
            return {"total": outputs[0]["coords"].new_zeros(())}
        return super().compute_loss(trained, batch, epoch)
