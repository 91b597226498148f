"""Opening a finished (or interrupted) run: its stored config with overrides, a checkpoint, its weights.

    opened = open_run("runs/default/seed=0", which="best", overrides=["flip_test=false"])
    module = opened.load_into(build_module(opened.cfg, info))

posereg-eval, -predict, -export and -hypotheses, the Python API (`posereg.load`, `posereg.evaluate`), DeepSkeleton's
stage 2 (reading its stage-1 run) and the DeepPose cascade (its previous stage's run) all open runs here. The stored
config is untrusted input (`posereg.runs.trust`, through `RunDir.config`): it is checked before anything is built, and
`trust_checkpoints` comes from the overrides (the command line) only. Overrides use Hydra's grammar and are checked
against the stored config: an unknown key is refused with the closest names (add a new one with `+key=value`), and
`data=<option>` style overrides replace that group with the option. Opening reads no weights (and imports no
torch), so the entry points check a run and its overrides before they load their recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.errors import ConfigError
from posereg.overrides import check_key, check_option
from posereg.paths import CONF_DIR
from posereg.runs.files import RunDir
from posereg.runs.keys import register_resolvers

if TYPE_CHECKING:
    from torch import nn


@dataclass
class OpenedRun:
    """A run opened for evaluation or inference: config, checkpoint, and how its weights are loaded."""

    run: RunDir
    cfg: DictConfig  # the stored config with the overrides; paths.run_dir is the run
    checkpoint: Path
    trust: bool  # load the checkpoint without the weights-only allow-list (trust_checkpoints)
    setting: str = "run"  # how the command names the run in its messages

    def state_dict(self, prefix: str = "") -> dict[str, Any]:
        """The checkpoint's weights (loaded safely), keys under `prefix` with the prefix removed."""
        from posereg.weights import load_checkpoint  # torch: only once weights are read

        state = load_checkpoint(self.checkpoint, trust=self.trust)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    def load_into(self, module: nn.Module, prefix: str = "") -> nn.Module:
        """`module` with the checkpoint's weights (those under `prefix`); ConfigError when they do not fit."""
        try:
            module.load_state_dict(self.state_dict(prefix))
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"{self.setting}={self.run.path}: {self.checkpoint.name} does not fit the run's "
                              f"network ({first}); was the config overridden with another network?") from None
        return module


def open_run(path: str | Path, which: str = "best", overrides: list[str] | tuple[str, ...] = (),
             trust: bool | None = None, setting: str = "run") -> OpenedRun:
    """Open a run directory: its stored config (brought up to date) with `overrides`, the checkpoint `which`
    (best | last | a file), and `trust` (None: `trust_checkpoints` of the overrides; a stored one is dropped).
    ConfigError naming `setting`."""
    register_resolvers()
    run = RunDir(Path(path).expanduser())
    cfg = apply_overrides(run.config(setting), list(overrides))
    with open_dict(cfg):
        cfg.paths.run_dir = str(run.path)
    checkpoint = run.checkpoint(which, setting)
    trust = bool(cfg.get("trust_checkpoints", False)) if trust is None else trust
    return OpenedRun(run, cfg, checkpoint, trust, setting)


def _group_node(group: str, option: str) -> DictConfig:
    """One config group option composed on its own (for `data=<option>` style overrides)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[f"{group}={option}"])[group]


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply Hydra-syntax overrides onto a stored config; unknown keys are refused unless added with `+`."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"cannot parse the overrides {overrides}: {first} (key=value, Hydra's grammar)") from None
    for o in parsed:
        key = o.key_or_group
        if o.is_delete() or o.is_sweep_override():
            raise ConfigError(f"override {o.input_line!r}: a run is opened with one value per key")
        with open_dict(cfg):
            if key in groups and o.package is None and isinstance(o.value(), str):
                check_option(o.input_line, key, o.value(), sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml")))
                if key not in cfg:  # a preset (experiment, debug): it chose the run's settings when it trained
                    raise ConfigError(f"{o.input_line}: {key} chooses settings when a run is trained; give the "
                                      "settings to change here as key=value")
                cfg[key] = _group_node(key, o.value())
            else:
                if not o.is_add():  # a key the run's config lacks: one line with its closest settings
                    check_key(o.input_line, cfg, key)
                OmegaConf.update(cfg, key, o.value(), force_add=True)
    return cfg
