"""SSP-Net (Luvizon, Tabia, Picard, PR 2023): scalable sequential pyramids, cut at test time.

Layout (deephar `spnet.py`, the authors' closest code): an entry flow to H/8 x W/8 x 3g, then K pyramids
alternating down (odd k: DU to levels 1..L) and up (even k: UU to levels L-1..0). Every step ends in a
prediction block (PB) that regresses a pose and re-injects its maps into the features (eq. 4); the PB
output at each level is the lateral input of the next pyramid at the same level. Outputs are named
`p{k}l{l}`, in execution order, which is also the order the modules run: cutting after output i runs
exactly the entry flow and the first i steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from posereg.errors import ConfigError
from posereg.nets.contract import Output, PoseNet
from posereg.nets.separable import ResidualBottleneck, SeparableConv2d, SeparableResidualUnit
from posereg.ops import confidence_from_prob, depth_attention, soft_argmax


@dataclass(frozen=True)
class Step:
    """One supervised output: pyramid k (1-based), level l, and the level it comes from."""

    pyramid: int
    level: int
    source_level: int

    @property
    def name(self) -> str:
        """Output name, e.g. `p3l2`."""
        return f"p{self.pyramid}l{self.level}"

    @property
    def down(self) -> bool:
        """True for a downscaling step (odd pyramid)."""
        return self.level > self.source_level


def pyramid_steps(num_pyramids: int, num_levels: int) -> list[Step]:
    """The supervised (pyramid, level) cells in execution order (K*L of them)."""
    steps = []
    for k in range(1, num_pyramids + 1):
        if k % 2 == 1:
            steps += [Step(k, l, l - 1) for l in range(1, num_levels + 1)]
        else:
            steps += [Step(k, l, l + 1) for l in range(num_levels - 1, -1, -1)]
    return steps


def output_names(num_pyramids: int = 8, num_levels: int = 3) -> list[str]:
    """Names of every supervised output in execution order (`p1l1`, ..., `p8l0` for K=8, L=3)."""
    return [s.name for s in pyramid_steps(num_pyramids, num_levels)]


class EntryFlow(nn.Module):
    """Table 1: conv 7x7/2 (64) -> res g -> maxpool 3/2 -> 2x res 2g -> maxpool 2/2 -> 2x res 3g (H/8)."""

    def __init__(self, growth: int = 128, stem_ch: int = 64, in_ch: int = 3):
        super().__init__()
        g = growth
        self.out_channels = 3 * g
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, stem_ch, 7, stride=2, padding=3, bias=False),
            ResidualBottleneck(stem_ch, g, stem_ch),
            nn.MaxPool2d(3, stride=2, padding=1),
            ResidualBottleneck(g, 2 * g, g),
            ResidualBottleneck(2 * g, 2 * g, g),
            nn.MaxPool2d(2, stride=2),
            ResidualBottleneck(2 * g, 3 * g, 3 * g // 2),
            ResidualBottleneck(3 * g, 3 * g, 3 * g // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B,3,H,W) -> features (B,3g,H/8,W/8)."""
        return self.body(x)


class DownscalingUnit(nn.Module):
    """DU: maxpool 2x2 then a separable residual unit widening by `growth`."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5):
        super().__init__()
        self.pool = nn.MaxPool2d(2, stride=2)
        self.res = SeparableResidualUnit(in_ch, out_ch, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the resolution, change the width."""
        return self.res(self.pool(x))


class UpscalingUnit(nn.Module):
    """UU: nearest x2 upsampling then a separable residual unit narrowing by `growth`."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.res = SeparableResidualUnit(in_ch, out_ch, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Double the resolution, change the width."""
        return self.res(self.up(x))


class PredictionBlock(nn.Module):
    """PB (Fig. 3, deephar `prediction_block`): heat maps h, depth maps d, F = X + Y + W_r h + W_s d."""

    def __init__(self, channels: int, num_joints: int, dims: int = 3, kernel_size: int = 5):
        super().__init__()
        c, n = channels, num_joints
        self.res = SeparableResidualUnit(c, c, kernel_size)
        self.bn1 = nn.BatchNorm2d(c)
        self.sep = SeparableConv2d(c, c, kernel_size)
        self.bn2 = nn.BatchNorm2d(c)
        self.act = nn.ReLU()
        self.heat = nn.Conv2d(c, n, 1, bias=False)
        self.heat_forward = nn.Conv2d(c, n, 1, bias=False)
        self.reinject_heat = nn.Conv2d(2 * n, c, 1, bias=False)  # W_r
        self.dims = dims
        if dims == 3:
            self.depth = nn.Conv2d(c, n, 1, bias=False)
            self.reinject_depth = nn.Conv2d(n, c, 1, bias=False)  # W_s

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Features -> (re-injected features F, heat-map logits h, depth logits d or None)."""
        x = self.res(x)
        y = self.sep(self.act(self.bn1(x)))
        a = self.act(self.bn2(y))
        h = self.heat(a)
        out = x + y + self.reinject_heat(self.act(torch.cat([self.heat_forward(a), h], dim=1)))
        d = None
        if self.dims == 3:
            d = self.depth(a)
            out = out + self.reinject_depth(d)
        return out, h, d


def regress(h: torch.Tensor, d: torch.Tensor | None, ramp: str = "center") -> dict[str, torch.Tensor]:
    """Heat-map logits (+ depth logits) -> unit coords (B,J,2|3) and confidence logits (B,J)."""
    xy, prob = soft_argmax(h, ramp=ramp, return_prob=True)
    coords = xy if d is None else torch.cat([xy, depth_attention(prob, d).unsqueeze(-1)], dim=-1)
    conf = confidence_from_prob(prob)
    # The generic losses take logits; logit(c) keeps BCE(c) exact while c stays away from 0 and 1.
    return {"coords": coords, "conf_logits": torch.logit(conf.clamp(1e-6, 1 - 1e-6))}


class SSPNet(PoseNet):
    """Scalable Sequential Pyramid Network returning one pose per (pyramid, level) output."""

    def __init__(
        self,
        num_joints: int,
        dims: int = 3,
        growth: int = 128,
        num_pyramids: int = 8,
        num_levels: int = 3,
        kernel_size: int = 5,
        stem_channels: int = 64,
        input_size: int | tuple[int, int] | None = None,
        ramp: str = "center",
    ):
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"method.dims={dims}: SSP-Net regresses 2 or 3 coordinates")
        if num_pyramids < 1 or num_levels < 1 or growth < 2 or growth % 2:
            raise ConfigError(
                f"SSP-Net needs num_pyramids>=1, num_levels>=1 and an even growth>=2 "
                f"(got K={num_pyramids}, L={num_levels}, growth={growth})"
            )
        if input_size is not None:
            hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            div = 8 * 2**num_levels
            if any(s % div for s in hw):
                raise ConfigError(
                    f"data.input_size={list(hw)}: SSP-Net with L={num_levels} levels needs a multiple of "
                    f"{div} (entry flow /8, then /2 per level)"
                )
        self.num_joints, self.dims, self.ramp = num_joints, dims, ramp
        self.input_hw = None if input_size is None else hw
        self.num_pyramids, self.num_levels, self.growth = num_pyramids, num_levels, growth
        self.entry = EntryFlow(growth, stem_channels)
        widths = [self.entry.out_channels + l * growth for l in range(num_levels + 1)]
        self.steps = pyramid_steps(num_pyramids, num_levels)
        self.output_names = [s.name for s in self.steps]
        self.units = nn.ModuleDict()
        self.blocks = nn.ModuleDict()
        for s in self.steps:
            unit = DownscalingUnit if s.down else UpscalingUnit
            self.units[s.name] = unit(widths[s.source_level], widths[s.level], kernel_size)
            self.blocks[s.name] = PredictionBlock(widths[s.level], num_joints, dims, kernel_size)

    @property
    def cut_aliases(self) -> dict[str, str]:
        """`"K,L"` (also `K_L`, `[K, L]`) for output pKlL, as the paper's Table 5 names its cells."""
        return {f"{st.pyramid},{st.level}": st.name for st in self.steps}

    def forward(self, x: torch.Tensor, cut: int | None = None) -> list[Output]:
        """Outputs up to `cut` (all when None), each with its re-injected `features` F; stops at the cut."""
        lateral: list[torch.Tensor | None] = [None] * (self.num_levels + 1)
        lateral[0] = self.entry(x)
        outputs: list[Output] = []
        cur, pyramid = lateral[0], 0
        for s in self.steps[: self.stop_at(cut)]:
            if s.pyramid != pyramid:  # a pyramid starts from the latest features at its first level
                cur, pyramid = lateral[s.source_level], s.pyramid
            f = self.units[s.name](cur)
            if lateral[s.level] is not None:
                f = f + lateral[s.level]
            cur, h, d = self.blocks[s.name](f)
            lateral[s.level] = cur
            out = regress(h, d, self.ramp)
            out.update(maps=h, name=s.name, features=cur)
            outputs.append(out)
        return outputs
