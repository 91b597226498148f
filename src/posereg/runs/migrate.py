"""Stored run configs written by older posereg, brought up to date when a run is opened (`RunDir.config`).

A run directory keeps the config it was composed with (`.hydra/config.yaml`). When a class moves, the configs
stored before still describe their runs: this module is the one place that says how to read them, so
posereg-eval, -predict, -export, -hypotheses, a stage-1 run read by DeepSkeleton's stage 2, and the check of a
resumed run's config all see today's names.
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


def migrate_config(cfg: DictConfig) -> DictConfig:
    """A stored config with moved `_target_`s renamed (interpolations kept)."""
    return OmegaConf.create(_rename_targets(OmegaConf.to_container(cfg, resolve=False)))
