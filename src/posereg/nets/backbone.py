"""timm feature extractors as pose backbones, with optional weights from a local checkpoint file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from posereg.errors import ConfigError


def timm_weight_kwargs(checkpoint: str | None) -> dict[str, Any]:
    """timm `create_model` kwargs: random init, or weights from the local file `checkpoint`."""
    if checkpoint is None:
        return {"pretrained": False}
    path = Path(str(checkpoint)).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"backbone.checkpoint={checkpoint!r} does not exist: give a local weight file or null for random init"
        )
    # timm filters the classifier and adapts the weights to features_only models itself.
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


def create_timm(name: str, checkpoint: str | None = None, **kwargs: Any) -> nn.Module:
    """Create timm model `name`, turning timm's own errors into one-line ConfigErrors."""
    if not timm.is_model(name):
        raise ConfigError(f"backbone.name={name!r} is not a timm model: see timm.list_models()")
    try:
        return timm.create_model(name, **timm_weight_kwargs(checkpoint), **kwargs)
    except (RuntimeError, KeyError) as err:
        raise ConfigError(f"backbone.checkpoint={checkpoint!r} cannot be loaded into {name}: {err}") from err


class Backbone(nn.Module):
    """A timm model with `features_only=True`; forward returns the selected feature levels."""

    def __init__(
        self,
        name: str,
        out_indices: Sequence[int] | None = None,
        checkpoint: str | None = None,
        timm_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        kwargs = dict(timm_kwargs or {})
        if out_indices is not None:
            kwargs["out_indices"] = tuple(int(i) for i in out_indices)
        self.name = name
        self.body = create_timm(name, checkpoint, features_only=True, **kwargs)
        info = self.body.feature_info
        self.channels: list[int] = list(info.channels())
        self.strides: list[int] = list(info.reduction())

    @property
    def out_channels(self) -> int:
        """Channels of the last (deepest) returned level."""
        return self.channels[-1]

    @property
    def out_stride(self) -> int:
        """Stride of the last returned level with respect to the input."""
        return self.strides[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the selected levels, shallowest first."""
        return self.body(x)
