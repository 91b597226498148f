"""Stored run configs written by older posereg, brought up to date when a run is opened (`RunDir.config`).

A run directory keeps the config it was composed with (`.hydra/config.yaml`). When a class moves or a setting
stops having a Python default, the configs stored before still describe their runs: this module is the one
place that says how to read them, so posereg-eval, -predict, -export, -hypotheses, a stage-1 run read by
DeepSkeleton's stage 2, and the check of a resumed run's config all see today's names.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

# `_target_` module prefixes that moved -> where they are now (issue 27: a folder per feature)
MOVED_TARGETS = {
    "posereg.callbacks.": "posereg.training.callbacks.",
    "posereg.loggers.": "posereg.training.loggers.",
    "posereg.perf.": "posereg.training.speed.",
    "posereg.losses_skeleton.": "posereg.losses.",
}

# What `data.augment` meant for a key the stored config lacks: the values posereg took from its Python
# defaults (`AugmentConfig`, up to commit 85c4746) before conf/data/augment/ stated every key.
AUGMENT_BEFORE_GROUP = {
    "scale": [0.75, 1.25], "rotation": 30.0, "rotation_prob": 0.6, "rotation_dist": "uniform", "flip_prob": 0.5,
    "translation": 0.05, "brightness": 0.2, "contrast": 0.2, "gain": [0.8, 1.2], "photometric_prob": 0.8,
    "blur_prob": 0.1, "noise_prob": 0.1, "occlusion_prob": 0.0, "occlusion_holes": [1, 3],
    "occlusion_size": [0.08, 0.25],
}


def moved_target(target: str) -> str:
    """Today's name of a `_target_` (unchanged when it did not move)."""
    for old, new in MOVED_TARGETS.items():
        if target.startswith(old):
            return new + target[len(old):]
    return target


def _rename_targets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: moved_target(v) if k == "_target_" and isinstance(v, str) else _rename_targets(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_targets(v) for v in node]
    return node


def _complete_augment(block: Any) -> None:
    """Fill the keys an augment mapping lacks with what they meant when it was stored."""
    if isinstance(block, dict):
        for key, value in AUGMENT_BEFORE_GROUP.items():
            block.setdefault(key, value)


# Networks whose config gained `pretrained` (issue 26): a config stored before trained from random weights.
PRETRAINED_FOLLOWS_BACKBONE = ("posereg.nets.SkeletonFCN", "posereg.nets.SkeletonRegressor",
                               "posereg.nets.skeleton_fcn.SkeletonFCN",
                               "posereg.nets.skeleton_regressor.SkeletonRegressor")


def _complete_pretrained(raw: dict) -> None:
    """A config stored before `backbone.pretrained` existed started from random weights: say so."""
    backbone = raw.get("backbone")
    if isinstance(backbone, dict) and "_target_" in backbone:
        backbone.setdefault("pretrained", False)
    net = (raw.get("method") or {}).get("net") if isinstance(raw.get("method"), dict) else None
    if isinstance(net, dict) and net.get("_target_") in PRETRAINED_FOLLOWS_BACKBONE:
        net.setdefault("pretrained", "${backbone.pretrained}")


def migrate_config(cfg: DictConfig) -> DictConfig:
    """A stored config with moved `_target_`s renamed and older augment blocks and settings completed
    (interpolations kept)."""
    raw = _rename_targets(OmegaConf.to_container(cfg, resolve=False))
    if isinstance(raw, dict):
        _complete_pretrained(raw)
    data = raw.get("data") if isinstance(raw, dict) else None
    if isinstance(data, dict):
        _complete_augment(data.get("augment"))
        for source in (data.get("sources") or {}).values():
            if isinstance(source, dict):
                _complete_augment(source.get("augment"))
    return OmegaConf.create(raw)
