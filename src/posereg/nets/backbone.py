"""timm feature extractors as pose backbones: random init, timm's pretrained weights, or a local weight file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.pretrained import check_weight_source, offline_route, pretrained_model, weights_source
from posereg.weights import load_checkpoint, load_matching


def require_timm_model(name: str, setting: str) -> None:
    """ConfigError unless `name` is a timm model (a tag such as `.tv_in1k` allowed)."""
    if not timm.is_model(name):
        raise ConfigError(f"{setting}={name!r} is not a timm model: see timm.list_models()")


def create_timm(name: str, checkpoint: str | None = None, min_fraction: float = 0.9, pretrained: bool = False,
                **kwargs: Any) -> nn.Module:
    """timm model `name`: random init, timm's pretrained weights (`pretrained`, posereg.nets.pretrained), and
    the weights of a local `checkpoint` file when given.

    The file is loaded safely (posereg.weights), a wrapper prefix (`model.`, `module.`, `backbone.`, ...) is
    removed, and loading fails when less than `min_fraction` of the model's tensors match by name and shape
    (a classifier's head is simply skipped: it is not part of a features-only model).
    """
    require_timm_model(name, "backbone.name")
    if pretrained:
        model = pretrained_model(name, "backbone.pretrained=true", offline_route(name), **kwargs)
    else:
        model = timm.create_model(name, pretrained=False, **kwargs)
    if checkpoint is not None:
        path = Path(str(checkpoint)).expanduser()
        if not path.is_file():
            raise ConfigError(f"backbone.checkpoint={checkpoint!r} does not exist: give a local weight file or null "
                              "for random init")
        setting = f"backbone.checkpoint={checkpoint} (backbone.min_fraction={min_fraction:g})"
        loaded, total, skipped = load_matching(model, load_checkpoint(path), min_fraction, setting)
        print(f"backbone {name}: loaded {loaded} of {total} tensors from {path} ({skipped} of its tensors skipped)")
    return model


class Backbone(nn.Module):
    """A timm model with `features_only=True`; forward returns the selected feature levels.

    `pretrained` starts from timm's pretrained weights (saved configs from before the setting have none:
    random init), `checkpoint` from a local file; not both.
    """

    def __init__(
        self,
        name: str,
        out_indices: Sequence[int] | None = None,
        checkpoint: str | None = None,
        timm_kwargs: Mapping[str, Any] | None = None,
        min_fraction: float = 0.9,
        pretrained: bool = False,
    ):
        super().__init__()
        check_weight_source(bool(pretrained), checkpoint, timm_kwargs)
        kwargs = dict(timm_kwargs or {})
        if out_indices is not None:
            kwargs["out_indices"] = tuple(int(i) for i in out_indices)
        self.name = name
        self.body = create_timm(name, checkpoint, min_fraction, bool(pretrained), features_only=True, **kwargs)
        if pretrained:
            print(f"backbone {name}: timm's pretrained weights ({weights_source(name)})")
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
