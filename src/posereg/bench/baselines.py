"""Chance levels on SynthPose: what a model that ignores the image scores, so learning curves have a floor."""

from __future__ import annotations

from typing import Any

import torch

from posereg.data.synth.dataset import SynthPose
from posereg.metrics.mpjpe import MPJPE


def _joints(ds: SynthPose, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,J,3) camera-frame joints and their (n,J) 3D masks of the first n samples."""
    samples = [ds[i] for i in range(n)]
    joints = torch.stack([s["joints_3d"] for s in samples])
    mask = torch.stack([s["weights"][:, 2] > 0 for s in samples])
    return joints, mask


def mean_pose_chance(variant: str = "synth3d", split: str = "val", seed: int = 0, n_train: int = 2000,
                     n_eval: int | None = None, **knobs: Any) -> dict[str, float]:
    """MPJPE / PA-MPJPE / N-MPJPE (mm) of predicting the training split's mean root-relative pose for every sample."""
    train = SynthPose("train", None, 64, None, seed=seed, variant=variant, **knobs)
    if not train.has_3d:
        raise ValueError(f"SynthPose variant {variant!r} has no 3D labels: the mean-pose chance level needs them")
    evaluated = SynthPose(split, None, 64, None, seed=seed, variant=variant, **knobs)
    joints, mask = _joints(train, n_train)
    rel = joints - joints[:, :1]
    mean = (rel * mask[..., None]).sum(0) / mask.sum(0).clamp(min=1)[:, None]
    gt, gt_mask = _joints(evaluated, len(evaluated) if n_eval is None else n_eval)
    metric = MPJPE(root_index=0, actions=None)
    metric.update(mean.expand_as(gt) + gt[:, :1], gt, gt_mask)
    return {k: float(v) for k, v in metric.compute().items()}


def root_depth_chance(variant: str = "synth3d", split: str = "val", seed: int = 0, n_train: int = 2000,
                      n_eval: int | None = None, input_size: int = 64, **knobs: Any) -> dict[str, float]:
    """Mean |error| (mm) of two image-free root-depth guesses: the training mean, and a fitted box prior.

    The box prior z = fx / W * extent (the root-depth MLP's form without the image) knows the crop
    camera, so the box size, but not the person; its one parameter, the extent, is the training
    median of z * W / fx (the L1-optimal constant).
    """
    train = SynthPose("train", None, input_size, None, seed=seed, variant=variant, **knobs)
    if not train.has_3d:
        raise ValueError(f"SynthPose variant {variant!r} has no 3D labels: the root-depth chance level needs them")
    evaluated = SynthPose(split, None, input_size, None, seed=seed, variant=variant, **knobs)

    def depth_and_focal(ds: SynthPose, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        samples = [ds[i] for i in range(n)]
        return (torch.stack([s["root_depth"] for s in samples]).double(),
                torch.stack([s["camera"][0] for s in samples]).double())

    z_train, fx_train = depth_and_focal(train, n_train)
    extent = float(torch.quantile(z_train * input_size / fx_train, 0.5))
    z, fx = depth_and_focal(evaluated, len(evaluated) if n_eval is None else n_eval)
    return {"mean_depth": float((z - z_train.mean()).abs().mean()),
            "box_prior": float((z - fx / input_size * extent).abs().mean()), "box_extent_mm": extent}
