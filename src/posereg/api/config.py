"""Composing a run's config in Python, as posereg-train composes it from its command line.

    cfg = posereg.compose(["experiment=quickstart", "debug=tiny"])
    cfg.paths.run_dir        # where posereg-train would put this run: runs/<experiment>/<run key>

Light: Hydra and OmegaConf only. The overrides are checked first (`posereg.overrides`): a mistyped group,
option or key is a one-line ConfigError with the closest valid names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.overrides import ConfigTree, check_overrides
from posereg.paths import CONF_DIR
from posereg.runs.keys import register_resolvers


def compose(overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()) -> DictConfig:
    """The root config with `overrides` (Hydra's grammar), with Hydra's node (`hydra`, whose task overrides
    `posereg.train` records) and `paths.run_dir` set to the run's directory. `config_dirs`: folders of your own
    configs, searched after posereg's (Hydra's --config-dir)."""
    register_resolvers()
    overrides = [str(o) for o in overrides]
    check_overrides(overrides, CONF_DIR, config_dirs)
    cfg = ConfigTree(CONF_DIR, config_dirs).compose(overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = str(OmegaConf.select(cfg, "hydra.run.dir"))  # resolved by posereg's run_dir resolver
    return cfg
