"""Stacked Hourglass network (Newell, Yang, Deng, ECCV'16), with per-stack volumetric depth for 3D.

Layout as the authors' PyTorch port (`princeton-vl/pytorch_stacked_hourglass`, models/posenet.py):
a stem to 1/4 resolution (7x7 s2 conv-BN-ReLU, residual 128, max-pool, residual 128, residual `width`),
then per stack an hourglass, a residual, a 1x1 conv-BN-ReLU and a 1x1 conv to the stack's maps. The next
stack's input is x + 1x1(features) + 1x1(maps). Every stack is a supervised output (`stack1`, ...).

3D (coarse-to-fine volumetric supervision of Pavlakos et al., Integral Table 8): stack s predicts J*D_s
maps viewed as (B,J,D_s,H,W); `depth_bins` gives D_s per stack (e.g. [1, 64] or [16, 64]).

Parameters: 8 stacks, width 256, 16 joints, 2D = 25,434,112 (~25.4 M), the same as the parameters the
port actually uses. The port's own `parameters()` sums to 32.8 M because its `Residual` always builds a
1x1 `skip_layer`, also when in == out channels, where it is never called; this module builds it only
when the channels change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posereg.codecs import input_hw
from posereg.errors import ConfigError
from posereg.nets.contract import Output, PoseNet


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1 (out/2), BN-ReLU-3x3 (out/2), BN-ReLU-1x1 (out), plus skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        # Conv biases kept (as in the original Torch code and the port) so parameter counts compare exactly.
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, kernel_size=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel_size=3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=1),
        )
        self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,C_in,H,W) -> (B,C_out,H,W)."""
        skip = x if self.skip is None else self.skip(x)
        return self.body(x) + skip


class Hourglass(nn.Module):
    """Recursive hourglass of `num_levels` levels: branch at this resolution + pooled, processed, upsampled."""

    def __init__(self, num_levels: int, width: int):
        super().__init__()
        self.up = Residual(width, width)
        self.down = Residual(width, width)
        self.inner = Hourglass(num_levels - 1, width) if num_levels > 1 else Residual(width, width)
        self.out = Residual(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,C,H,W) -> (B,C,H,W); H and W divisible by 2**num_levels."""
        low = self.out(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.up(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class HourglassStack(nn.Module):
    """One stack: hourglass -> residual -> 1x1 conv-BN-ReLU features -> 1x1 conv maps; re-injection convs."""

    def __init__(self, width: int, num_levels: int, map_channels: int, reinject: bool):
        super().__init__()
        self.hourglass = Hourglass(num_levels, width)
        self.residual = Residual(width, width)
        self.lin = nn.Sequential(nn.Conv2d(width, width, kernel_size=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.maps = nn.Conv2d(width, map_channels, kernel_size=1)
        self.merge_features = nn.Conv2d(width, width, kernel_size=1) if reinject else None
        self.merge_maps = nn.Conv2d(map_channels, width, kernel_size=1) if reinject else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack input (B,C,h,w) -> (flat maps (B,J*D,h,w), features (B,C,h,w))."""
        feat = self.lin(self.residual(self.hourglass(x)))
        return self.maps(feat), feat

    def next_input(self, x: torch.Tensor, feat: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Next stack's input: x + 1x1(features) + 1x1(flat maps)."""
        return x + self.merge_features(feat) + self.merge_maps(maps)


class StackedHourglass(PoseNet):
    """Stem + `num_stacks` hourglasses; returns one output per stack up to `cut`, maps at 1/4 of the input."""

    def __init__(
        self,
        num_joints: int,
        decoder: nn.Module,
        num_stacks: int = 2,
        width: int = 256,
        num_levels: int = 4,
        depth_bins: int | Sequence[int] | None = None,
        input_size: int | Sequence[int] | None = None,
        dims: int | None = None,
    ):
        super().__init__()
        if dims == 2:  # 2D data: heat maps, whatever the config says for volumes
            depth_bins = None
        if num_stacks < 1 or num_levels < 1 or width < 2 or width % 2:
            raise ConfigError(
                f"hourglass needs num_stacks>=1, num_levels>=1 and an even width>=2 "
                f"(got num_stacks={num_stacks}, num_levels={num_levels}, width={width})"
            )
        if input_size is not None:
            hw = input_hw(input_size)
            div = 4 * 2**num_levels
            if any(s % div for s in hw):
                raise ConfigError(
                    f"data.input_size={list(hw)}: an hourglass with num_levels={num_levels} needs a multiple of "
                    f"{div} (stem /4, then /2 per level)"
                )
        self.num_joints = num_joints
        self.depth_bins = _per_stack_bins(depth_bins, num_stacks)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            Residual(64, 128),
            nn.MaxPool2d(2),
            Residual(128, 128),
            Residual(128, width),
        )
        self.stacks = nn.ModuleList(
            HourglassStack(width, num_levels, num_joints * (d or 1), reinject=s < num_stacks - 1)
            for s, d in enumerate(self.depth_bins)
        )
        self.decoder = decoder
        self.output_names = self.config_output_names(num_stacks)
        self._init_weights()

    @staticmethod
    def config_output_names(num_stacks: int = 2, **_: object) -> list[str]:
        """Output names a config will produce, without building the network (`stack1`, ..., `stackN`)."""
        return [f"stack{s + 1}" for s in range(int(num_stacks))]

    def _init_weights(self) -> None:
        """PyTorch default convs, BN weight 1 / bias 0; map convs N(0, 1e-3) so a soft-argmax starts near-uniform."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for stack in self.stacks:
            nn.init.normal_(stack.maps.weight, std=1e-3)
            nn.init.zeros_(stack.maps.bias)

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """Outputs of stacks 0..`cut` (all when None), each with `coords` (B,J,2|3), raw `maps` and `features`."""
        stop = self.stop_at(cut)
        if not 1 <= stop <= len(self.stacks):
            raise ConfigError(f"cut={cut}: index out of range for {len(self.stacks)} stacks")
        x = self.stem(image)
        outputs: list[Output] = []
        for s, stack in enumerate(self.stacks[:stop]):
            flat, feat = stack(x)
            maps = flat
            if self.depth_bins[s] is not None:
                b, _, h, w = flat.shape
                maps = flat.view(b, self.num_joints, self.depth_bins[s], h, w)
            outputs.append({"name": self.output_names[s], "coords": self.decoder(maps), "maps": maps, "features": feat})
            if s < stop - 1:
                x = stack.next_input(x, feat, flat)
        return outputs


def _per_stack_bins(depth_bins: int | Sequence[int] | None, num_stacks: int) -> list[int | None]:
    """`depth_bins` as one entry per stack: None (2D), an int for every stack, or a list of ints."""
    if depth_bins is None:
        return [None] * num_stacks
    bins = [int(depth_bins)] * num_stacks if isinstance(depth_bins, int) else [int(b) for b in depth_bins]
    if len(bins) != num_stacks:
        raise ConfigError(
            f"method.net.depth_bins={bins}: give one entry per stack (num_stacks={num_stacks}) or a single int"
        )
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in bins):
        raise ConfigError(f"method.net.depth_bins={bins}: every stack needs a positive integer number of bins")
    return bins
