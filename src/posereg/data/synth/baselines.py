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
