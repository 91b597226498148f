"""What the entry points share: `_target_` groups, the auto cut, weights-only initialisation, summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from posereg.config import instantiate
from posereg.console import console
from posereg.errors import ConfigError, require_int
from posereg.nets.cut import auto_fps
from posereg.runs.checkpoints import load_checkpoint


def check_run_settings(cfg: DictConfig) -> None:
    """One-line errors for run settings no component owns: the seed and the trainer's budgets."""
    require_int(cfg.seed, "seed", 0)
    for key, minimum in (("max_epochs", -1), ("max_steps", -1)):
        if cfg.trainer.get(key) is not None:
            require_int(cfg.trainer[key], f"trainer.{key}", minimum)


def build_trainer(node: DictConfig, **kwargs: Any) -> Any:
    """The Lightning Trainer of the trainer group; Lightning's own argument errors become ConfigErrors.

    The data module shards training batches and evaluation samples across ranks itself (every sample
    once), so Lightning must never wrap its samplers (`use_distributed_sampler=False`).
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(node, **kwargs, use_distributed_sampler=False)
    except Exception as err:  # noqa: BLE001 - Hydra wraps the Trainer's error; report it as a setting error
        cause = err.__cause__ or err
        if isinstance(cause, MisconfigurationException | ValueError | TypeError):
            raise ConfigError(f"trainer settings: {str(cause).splitlines()[0]}") from None
        raise


def resolve_auto_cut(cfg: DictConfig, info: Any) -> None:
    """Replace `cut=auto:<fps>` by the latest output measured at that frame rate on this machine."""
    fps = auto_fps(cfg.get("cut"))
    if fps is None:
        return
    from posereg.bench.sspnet import pick_cut_for_fps  # measuring belongs to the entry layer, not to nets
    from posereg.methods import build_net

    size = info.input_size if isinstance(info.input_size, int) else int(info.input_size[0])
    name = pick_cut_for_fps(build_net(cfg, info), fps, size)
    console.print(f"cut=auto:{fps:g}: {name} is the latest output at >= {fps:g} frames/s here")
    with open_dict(cfg):
        cfg.cut = name


def strip_prefixes(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """A state dict whose keys match `own`, removing a wrapper prefix (`model.`, `module.`, ...) when needed."""
    if any(k in own for k in state):
        return state
    for prefix in ("model.", "module.", "net.", "backbone.", "state_dict."):
        renamed = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k in own for k in renamed):
            return renamed
    return state


def load_init_weights(model: torch.nn.Module, path: str, min_fraction: float, trust: bool = False) -> int:
    """Load weights only (fine-tuning) from a checkpoint; ConfigError when less than `min_fraction` of the
    model's tensors find a tensor of the same name and shape (another architecture). Returns the count."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"init_from={path}: no such checkpoint file")
    state = load_checkpoint(file, trust=trust)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"init_from={path}: not a checkpoint or state dict of tensors")
    own = model.state_dict()
    state = strip_prefixes(state, set(own))
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    fraction = len(usable) / max(len(own), 1)
    if fraction < min_fraction:
        raise ConfigError(f"init_from={path}: only {len(usable)} of the model's {len(own)} tensors match by name "
                          f"and shape ({fraction:.0%} < init_from_min_fraction={min_fraction:g}): is it a "
                          "checkpoint of another network?")
    model.load_state_dict(usable, strict=False)
    console.print(f"init_from: loaded {len(usable)} of {len(own)} tensors from {file} "
                  f"({len(state) - len(usable)} of its tensors skipped: name or shape)")
    return len(usable)
