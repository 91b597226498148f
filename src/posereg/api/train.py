"""Training from Python: the run of a composed config, as posereg-train trains it.

    cfg = posereg.compose(["experiment=quickstart", "debug=tiny"])
    metrics = posereg.train(cfg)          # metrics.json's content; the run is in cfg.paths.run_dir
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.errors import ConfigError
from posereg.runs import RunDir

EXIT_BAD_INPUT = 2


def train(cfg: DictConfig, extra_callbacks: list[Any] | None = None) -> dict | None:
    """Train (or resume, or skip) the run of a config composed by `posereg.compose`, as posereg-train does with
    the same overrides; returns metrics.json's content (None when training stopped early). A run that stops
    with an exit code raises (ConfigError for bad input, code 2; else RuntimeError) naming status.json's error."""
    run_dir = OmegaConf.select(cfg, "paths.run_dir")
    if not run_dir:
        raise ConfigError("paths.run_dir is not set: compose the config with posereg.compose(...), which sets it, "
                          "or set cfg.paths.run_dir to the run directory")
    overrides = [str(o) for o in OmegaConf.select(cfg, "hydra.overrides.task", default=None) or []]
    job = copy.deepcopy(cfg)
    with open_dict(job):
        job.pop("hydra", None)  # Hydra's own node: posereg-train's task never sees it either
    # the one deferred import: torch, Lightning and timm load only once there is a run to train
    from posereg.recipes.train import train_task

    try:
        return train_task(job, run_path=Path(run_dir), overrides=overrides, extra_callbacks=extra_callbacks,
                          multirun=False)
    except SystemExit as stop:  # the lifecycle ends a single run with its exit code; a library raises instead
        if not stop.code:
            return None
        status = RunDir(Path(run_dir)).read_status() if Path(run_dir).exists() else {}
        why = status.get("error") or "see the lines above"
        error = ConfigError if stop.code == EXIT_BAD_INPUT else RuntimeError
        raise error(f"{run_dir}: training stopped with exit code {stop.code} ({why})") from None
