"""SSP-Net (Luvizon, Tabia, Picard, PR 2023): scalable sequential pyramids, cut at test time.

Layout (deephar `spnet.py`, the authors' closest code): an entry flow to H/8 x W/8 x 3g, then K pyramids
alternating down (odd k: DU to levels 1..L) and up (even k: UU to levels L-1..0). Every step ends in a
prediction block (PB) that regresses a pose and re-injects its maps into the features (eq. 4); the PB
output at each level is the lateral input of the next pyramid at the same level. Outputs are named
`p{k}l{l}`, in execution order, which is also the order the modules run: cutting after output i runs
exactly the entry flow and the first i steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from posereg.errors import ConfigError
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


def cut_index(cut: int | str | tuple | list | None, names: list[str]) -> int | None:
    """Index of the cut output among `names`; None means run everything.

    Accepts None / "all" / "last" (everything), an output name (`p3l2`), "3,2" / "3_2" / (3, 2)
    for pyramid 3 level 2, or a python index (negative counts from the end).
    """
    if cut is None or (isinstance(cut, str) and cut.strip().lower() in ("all", "last", "")):
        return None
    if isinstance(cut, bool):
        raise ConfigError(f"cut={cut!r}: expected an output name like 'p3l2', 'K,L' or an index")
    if isinstance(cut, int):
        if not -len(names) <= cut < len(names):
            raise ConfigError(f"cut={cut}: index out of range for {len(names)} outputs")
        return cut % len(names)
    if isinstance(cut, (tuple, list)) or hasattr(cut, "__len__") and not isinstance(cut, str):
        items = list(cut)
        if len(items) != 2:
            raise ConfigError(f"cut={cut!r}: give (pyramid, level), e.g. cut='3,2'")
        name = f"p{int(items[0])}l{int(items[1])}"
    else:
        text = str(cut).strip().lower()
        m = re.fullmatch(r"p?(\d+)\s*[,_ l]\s*(\d+)", text)
        if m is None:
            raise ConfigError(
                f"cut={cut!r}: expected an output name like 'p3l2', 'K,L', an index, 'all' or 'last'"
            )
        name = f"p{int(m.group(1))}l{int(m.group(2))}"
    if name not in names:
        raise ConfigError(f"cut={cut!r}: output {name} does not exist; available: {', '.join(names)}")
    return names.index(name)


def canonical_cut(cut: int | str | tuple | list | None, names: list[str]) -> str | None:
    """A cut setting as None (last output), "all", an output name, or "auto:<fps>" (checked, unresolved)."""
    if cut is None:
        return None
    if isinstance(cut, str):
        text = cut.strip().lower()
        if text in ("all", "last"):
            return None if text == "last" else "all"
        if text.startswith("auto:"):
            try:
                fps = float(text[5:])
            except ValueError as err:
                raise ConfigError(f"cut={cut!r}: expected auto:<frames per second>, e.g. cut=auto:200") from err
            if fps <= 0:
                raise ConfigError(f"cut={cut!r}: the frame rate must be positive")
            return f"auto:{fps:g}"
    return names[cut_index(cut, names)]


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


class SSPNet(nn.Module):
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
        self.names = [s.name for s in self.steps]
        self.output_names = self.names
        self.units = nn.ModuleDict()
        self.blocks = nn.ModuleDict()
        for s in self.steps:
            unit = DownscalingUnit if s.down else UpscalingUnit
            self.units[s.name] = unit(widths[s.source_level], widths[s.level], kernel_size)
            self.blocks[s.name] = PredictionBlock(widths[s.level], num_joints, dims, kernel_size)

    @staticmethod
    def config_output_names(num_pyramids: int = 8, num_levels: int = 3, **_: object) -> list[str]:
        """Output names a config will produce, without building the network (for config validation)."""
        return output_names(int(num_pyramids), int(num_levels))

    @staticmethod
    def canonical_cut(cut: int | str | tuple | list | None, names: list[str]) -> str | None:
        """Config-time cut normalization (see the module-level `canonical_cut`)."""
        return canonical_cut(cut, names)

    def select_cut(self, cut: int | str | tuple | list | None, device: str = "cpu") -> str | None:
        """The cut as None / "all" / output name; `auto:<fps>` picks the latest output measured fast enough."""
        cut = canonical_cut(cut, self.names)
        if isinstance(cut, str) and cut.startswith("auto:"):
            from posereg.bench.sspnet import resolve_cut  # the benchmark measures; nets stay free of it

            hw = self.input_hw or (256, 256)
            return resolve_cut(cut, self, device=device, input_size=hw[0])
        return cut

    def modules_for(self, cut: int | str | tuple | None = None) -> list[nn.Module]:
        """Top-level modules that forward(x, cut) executes (entry flow, then unit+PB per step)."""
        idx = cut_index(cut, self.names)
        last = len(self.steps) - 1 if idx is None else idx
        mods: list[nn.Module] = [self.entry]
        for s in self.steps[: last + 1]:
            mods += [self.units[s.name], self.blocks[s.name]]
        return mods

    def forward_features(
        self, x: torch.Tensor, cut: int | str | tuple | None = None
    ) -> tuple[list[dict], list[torch.Tensor]]:
        """Like forward, plus each output's re-injected features F (e.g. F_1^3 for the root-depth MLP)."""
        idx = cut_index(cut, self.names)
        last = len(self.steps) - 1 if idx is None else idx
        lateral: list[torch.Tensor | None] = [None] * (self.num_levels + 1)
        lateral[0] = self.entry(x)
        outputs, features = [], []
        cur, pyramid = lateral[0], 0
        for s in self.steps[: last + 1]:
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
            features.append(cur)
        return outputs, features

    def forward(self, x: torch.Tensor, cut: int | str | tuple | None = None) -> list[dict]:
        """Image batch -> list of output dicts up to `cut` (all when None); stops computing at the cut."""
        return self.forward_features(x, cut)[0]
