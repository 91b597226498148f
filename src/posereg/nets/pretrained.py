"""timm's pretrained weights through timm's own mechanism (the Hugging Face hub and its cache), one-line errors.

`timm.create_model(name, pretrained=True)` downloads a model's weights once into the Hugging Face cache
(`HF_HUB_CACHE`, by default ~/.cache/huggingface/hub) and reads the cached copy afterwards; with
`HF_HUB_OFFLINE=1` the cached copy is used without asking the network. When the weights can be neither
downloaded nor found there, the error is one line naming the offline route: a local weight file, made on a
connected machine by `posereg-weights export`, given as `backbone.checkpoint`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import timm
from torch import nn

from posereg.errors import ConfigError

# timm keyword arguments that would set the initial weights behind the backbone group's back
WEIGHT_KWARGS = {"pretrained": "backbone.pretrained=true", "checkpoint_path": "backbone.checkpoint=<file>"}


def export_command(name: str) -> str:
    """The command that writes `name`'s pretrained weights to a local file (on a connected machine)."""
    return f"posereg-weights export {name} --out {name}.safetensors"


def offline_route(name: str) -> str:
    """How to start from `name`'s pretrained weights without a network."""
    return (f"offline, use a local file: backbone.pretrained=false backbone.checkpoint=<file>, the file made on a "
            f"connected machine with `{export_command(name)}` (docs/methods.md, 'Pretrained backbones')")


def check_weight_source(pretrained: bool, checkpoint: str | None, timm_kwargs: Mapping[str, Any] | None) -> None:
    """ConfigError for initial weights asked for twice, or through timm_kwargs instead of the backbone group."""
    for key, setting in WEIGHT_KWARGS.items():
        if key in (timm_kwargs or {}):
            raise ConfigError(f"backbone.timm_kwargs.{key}: the initial weights are set with {setting}, not "
                              "through timm_kwargs")
    if pretrained and checkpoint is not None:
        raise ConfigError(f"backbone.pretrained=true and backbone.checkpoint={checkpoint}: choose one source of "
                          "initial weights (backbone.pretrained=false to load the file)")


def weights_source(name: str) -> str:
    """Where timm takes `name`'s pretrained weights from: its Hugging Face hub id (else its URL, else the name)."""
    cfg = timm.models.get_pretrained_cfg(name)
    return str(getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None) or name)


def _failure(name: str, err: BaseException) -> str:
    """What went wrong, in a few words."""
    if isinstance(err, FileNotFoundError | ConnectionError):  # no cached copy, and the hub unreachable or offline
        from huggingface_hub import constants

        return (f"the pretrained weights of {name} ({weights_source(name)}) are not in the Hugging Face cache "
                f"{constants.HF_HUB_CACHE} and the hub cannot be reached")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"timm could not get the pretrained weights of {name} ({weights_source(name)}): {first}"


@contextmanager
def hub_errors(name: str, setting: str, remedy: str) -> Iterator[None]:
    """Turn a failed download of `name`'s pretrained weights into one ConfigError line: setting, failure, remedy."""
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings would print several lines before the one error
    try:
        yield
    except (OSError, RuntimeError) as err:  # hub, HTTP and cache errors are OSErrors; timm's own RuntimeErrors
        raise ConfigError(f"{setting}: {_failure(name, err)}; {remedy}") from None
    finally:
        hub_log.setLevel(level)


def pretrained_model(name: str, setting: str, remedy: str, **kwargs: Any) -> nn.Module:
    """timm's `name` with its pretrained weights (from the Hugging Face cache, downloaded there once)."""
    with hub_errors(name, setting, remedy):
        return timm.create_model(name, pretrained=True, **kwargs)
