"""What the recipes share: the Lightning Trainer, run-setting checks, the auto cut, weights-only initialisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from posereg.config import instantiate
from posereg.console import console
from posereg.errors import ConfigError, require_int
from posereg.nets.cut import auto_fps
from posereg.weights import load_checkpoint, load_matching


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
    from posereg.methods.initial_weights import without_initial_weights

    size = info.input_size if isinstance(info.input_size, int) else int(info.input_size[0])
    name = pick_cut_for_fps(build_net(without_initial_weights(cfg), info), fps, size)  # timed, not trained
    console.print(f"cut=auto:{fps:g}: {name} is the latest output at >= {fps:g} frames/s here")
    with open_dict(cfg):
        cfg.cut = name


def load_init_weights(model: torch.nn.Module, path: str, min_fraction: float, trust: bool = False) -> int:
    """Load weights only (fine-tuning) from a checkpoint; ConfigError when less than `min_fraction` of the
    model's tensors find a tensor of the same name and shape (another architecture). Returns the count."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"init_from={path}: no such checkpoint file")
    loaded, total, skipped = load_matching(model, load_checkpoint(file, trust=trust), min_fraction,
                                           f"init_from={path} (init_from_min_fraction={min_fraction:g})")
    console.print(f"init_from: loaded {loaded} of {total} tensors from {file} ({skipped} of its tensors skipped: "
                  "name or shape)")
    return loaded


def check_checkpoint_fits(model: torch.nn.Module, path: Path, trust: bool, fix: str) -> None:
    """ConfigError when the checkpoint at `path` does not hold the weights of `model` (the network of the run's own
    saved config): it was damaged, or written by another configuration; `fix` says what to do."""
    state = load_checkpoint(path, trust=trust)
    state = state.get("state_dict") if isinstance(state, dict) else None
    own = model.state_dict()
    if not isinstance(state, dict):
        wrong = ["state_dict"]
    else:
        wrong = [k for k in own if not isinstance(state.get(k), torch.Tensor) or state[k].shape != own[k].shape]
        wrong += [k for k in state if k not in own]
    if wrong:
        raise ConfigError(f"{path} does not hold this run's network ({len(wrong)} tensors missing, extra or of "
                          f"another shape, e.g. {str(wrong[0])[:80]}): it is damaged or was written by another "
                          f"configuration; {fix}")
