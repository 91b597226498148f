"""The network contract every posereg network follows (docs/architecture.md, "Networks").

A network returns one dict per supervised output (stage, pyramid level, block), in execution order:

* ``name`` (str), one of ``output_names``;
* ``coords`` (B,J,2|3): unit coordinates u = x/W_in, v = y/H_in, z_n = (z - z_root)/depth_range + 0.5;
* ``maps`` (optional): raw logits (B,J,H,W) or (B,J,D,H,W) for map heads;
* ``conf_logits`` (optional): (B,J) joint-presence logits;
* ``features`` (optional): (B,C,h,w) features of that output (e.g. for the root-depth MLP).

``forward(image, cut)`` computes outputs 0..cut only (all when ``cut`` is None): the early exit that makes
a test-time cut cheaper. ``cut`` is a resolved index; `posereg.nets.cut.parse_cut` turns the user's
setting into one.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn

Output = dict[str, Any]


class PoseNet(nn.Module, abc.ABC):
    """Base class of posereg networks: names its outputs, stops at a cut, may add cut spellings."""

    #: names of the supervised outputs in execution order (set by the subclass' constructor)
    output_names: list[str]
    #: False for networks whose outputs carry no `maps` (direct regression): heat-map losses cannot apply
    produces_maps: ClassVar[bool] = True

    @property
    def cut_aliases(self) -> dict[str, str]:
        """Extra spellings of output names accepted by `cut` (e.g. SSP-Net's '3,2' for p3l2)."""
        return {}

    @abc.abstractmethod
    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """Outputs 0..cut (all when None) for an image batch (B,3,H,W)."""

    def stop_at(self, cut: int | None) -> int:
        """Number of outputs to compute for `cut` (all when None)."""
        return len(self.output_names) if cut is None else int(cut) + 1
