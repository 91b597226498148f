"""Luvizon et al. 2017: Inception stem + K prediction blocks regressing joints from part and context maps."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from posereg.errors import ConfigError
from posereg.nets.contract import Output, PoseNet
from posereg.nets.separable import SeparableConv2d, SeparableResidualUnit
from posereg.ops import aggregate_context, check_ramp, joint_probability, soft_argmax, to_unit

STEM_REFERENCE_WIDTH = 576  # 3 * 192: the released model's feature width


def _conv_bn(in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1, act: bool = True):
    """Conv (bias-free, 'same' padding) -> BN [-> ReLU]."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=(k[0] // 2, k[1] // 2), bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _act_conv_bn(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """ReLU -> conv (bias-free) -> BN, the pre-activated projection of the reference code."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    )


class InceptionStem(nn.Module):
    """Inception-v4-like entry flow (H -> H/8) ending in a separable residual unit of `width` channels."""

    def __init__(self, width: int = STEM_REFERENCE_WIDTH, kernel_size: int = 3):
        super().__init__()
        s = width / STEM_REFERENCE_WIDTH

        def c(n: int) -> int:
            return max(8, round(n * s))

        self.entry = nn.Sequential(
            _conv_bn(3, c(32), 3, stride=2), _conv_bn(c(32), c(32), 3), _conv_bn(c(32), c(64), 3)
        )
        self.down1_conv = _conv_bn(c(64), c(96), 3, stride=2)
        self.down1_pool = nn.MaxPool2d(3, stride=2, padding=1)
        mid = c(96) + c(64)
        self.branch_a = nn.Sequential(_conv_bn(mid, c(64), 1), _conv_bn(c(64), c(96), 3, act=False))
        self.branch_b = nn.Sequential(
            _conv_bn(mid, c(64), 1),
            _conv_bn(c(64), c(64), (5, 1)),
            _conv_bn(c(64), c(64), (1, 5)),
            _conv_bn(c(64), c(96), 3, act=False),
        )
        self.down2_conv = _act_conv_bn(2 * c(96), c(192), 3, stride=2)
        self.down2_pool = nn.MaxPool2d(2, stride=2)
        self.out = SeparableResidualUnit(c(192) + 2 * c(96), width, kernel_size)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,width,H/8,W/8)."""
        x = self.entry(x)
        x = torch.cat([self.down1_conv(x), self.down1_pool(x)], dim=1)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        x = torch.cat([self.down2_conv(x), self.down2_pool(x)], dim=1)
        return self.out(x)


class BlockA(nn.Module):
    """Hourglass over three resolutions (s, s/2, s/4) of separable residual units, half width below."""

    def __init__(self, width: int, kernel_size: int = 5):
        super().__init__()
        half = width // 2
        self.skip = SeparableResidualUnit(width, width, kernel_size)
        self.down = _act_conv_bn(width, half, 1)
        self.l2_in = SeparableResidualUnit(half, half, kernel_size)
        self.l2_skip = SeparableResidualUnit(half, half, kernel_size)
        self.l3 = nn.Sequential(*(SeparableResidualUnit(half, half, kernel_size) for _ in range(3)))
        self.l2_out = SeparableResidualUnit(half, width, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in and out; spatial size must be divisible by 4."""
        a = self.skip(x)
        low = self.l2_in(self.down(F.max_pool2d(x, 2)))
        b = self.l2_skip(low)
        c = F.interpolate(self.l3(F.max_pool2d(low, 2)), scale_factor=2.0, mode="nearest")
        b = F.interpolate(self.l2_out(b + c), scale_factor=2.0, mode="nearest")
        return a + b


class BlockB(nn.Module):
    """SepConv -> M raw maps (RegMap) and, unless last, their 1x1 re-projection into the flow (fReMap)."""

    def __init__(self, width: int, num_maps: int, kernel_size: int = 5, reinject: bool = True):
        super().__init__()
        self.sepconv = nn.Sequential(nn.ReLU(), SeparableConv2d(width, width, kernel_size), nn.BatchNorm2d(width))
        self.regmap = nn.Sequential(nn.ReLU(), nn.Conv2d(width, num_maps, 1, bias=False))
        # The last block's re-projection would feed nothing (and leave DDP with unused parameters).
        self.fremap = _act_conv_bn(num_maps, width, 1) if reinject else None

    def forward(self, a: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Block-A output -> (next block input or None, raw maps (B,M,H,W))."""
        y = self.sepconv(a)
        h = self.regmap(y)
        nxt = a + y + self.fremap(h) if self.fremap is not None else None
        return nxt, h


class ContextRegression(nn.Module):
    """Parameter-free regression: soft-argmax of part and context maps, joint probabilities, eq. 6."""

    def __init__(self, num_joints: int, num_context: int = 2, alpha: float = 0.8, ramp: str = "linspace01"):
        super().__init__()
        self.num_joints = num_joints
        self.num_context = num_context
        self.alpha = alpha
        self.ramp = check_ramp(ramp)

    def _coords(self, maps: torch.Tensor) -> torch.Tensor:
        """Soft-argmax of (B,N,H,W) maps in unit coordinates (B,N,2)."""
        xy = soft_argmax(maps, ramp=self.ramp)
        return torch.stack([to_unit(xy[..., 0], self.ramp, maps.shape[-1]),
                            to_unit(xy[..., 1], self.ramp, maps.shape[-2])], dim=-1)

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw maps (B,(Nc+1)*J,H,W) -> coords, part/context maps, conf logits and context terms."""
        b, _, hh, ww = h.shape
        j, nc = self.num_joints, self.num_context
        part = h[:, :j]
        part_xy = self._coords(part)
        out = {"maps": part, "conf_logits": part.flatten(2).amax(dim=-1), "part_coords": part_xy}
        if nc == 0:
            out["coords"] = part_xy
            return out
        # Context channels are grouped per joint: joint n owns channels J + n*Nc ... J + (n+1)*Nc - 1.
        ctx = h[:, j:].reshape(b, j, nc, hh, ww)
        ctx_xy = self._coords(ctx.reshape(b, j * nc, hh, ww)).reshape(b, j, nc, 2)
        ctx_prob = joint_probability(ctx.reshape(b, j * nc, hh, ww)).reshape(b, j, nc)
        out["coords"] = aggregate_context(part_xy, ctx_xy, ctx_prob, self.alpha)
        out.update(context_maps=ctx, context_coords=ctx_xy, context_prob=ctx_prob)
        return out


class LuvizonNet(PoseNet):
    """Stem + K (Block-A, Block-B) prediction blocks; returns one output dict per block."""

    def __init__(
        self,
        num_joints: int,
        dims: int = 2,
        input_size: int | tuple[int, int] | None = None,
        width: int = STEM_REFERENCE_WIDTH,
        num_blocks: int = 8,
        kernel_size: int = 5,
        num_context: int = 2,
        alpha: float = 0.8,
        ramp: str = "linspace01",
        stem_kernel_size: int = 3,
    ):
        super().__init__()
        _check(num_joints, width, num_blocks, kernel_size, num_context, alpha)
        if dims != 2:
            raise ConfigError(f"method.dims={dims}: the Luvizon'17 net regresses 2D joints only; use dims=2")
        if input_size is not None:
            _check_input_size((input_size, input_size) if isinstance(input_size, int) else tuple(input_size))
        self.output_names = [f"block{k + 1}" for k in range(int(num_blocks))]
        self.num_joints = num_joints
        self.num_context = num_context
        num_maps = (num_context + 1) * num_joints
        self.stem = InceptionStem(width, stem_kernel_size)
        self.blocks_a = nn.ModuleList(BlockA(width, kernel_size) for _ in range(num_blocks))
        self.blocks_b = nn.ModuleList(
            BlockB(width, num_maps, kernel_size, reinject=k < num_blocks - 1) for k in range(num_blocks)
        )
        self.regression = ContextRegression(num_joints, num_context, alpha, ramp)

    def forward(self, image: torch.Tensor, cut: int | None = None) -> list[Output]:
        """(B,3,H,W) with H, W divisible by 32 -> dicts of blocks 1..cut+1 (coords (B,J,2) unit, maps, ...)."""
        _check_input_size(tuple(image.shape[-2:]))
        x = self.stem(image)
        outputs = []
        for k in range(self.stop_at(cut)):
            x, h = self.blocks_b[k](self.blocks_a[k](x))
            out = self.regression(h)
            out["name"] = self.output_names[k]
            outputs.append(out)
        return outputs


def _check_input_size(hw: tuple[int, ...]) -> None:
    """Stem /8 then two hourglass poolings /4: sides must be multiples of 32."""
    if any(int(s) % 32 for s in hw):
        raise ConfigError(
            f"data.input_size={list(hw)}: the Luvizon'17 net needs sides divisible by 32 "
            "(stem /8, hourglass /4): use e.g. 64, 128 or 256"
        )


def _check(num_joints: int, width: int, num_blocks: int, kernel_size: int, num_context: int, alpha: float):
    """Raise ConfigError for impossible hyper-parameters."""
    if num_joints < 1:
        raise ConfigError(f"num_joints must be >= 1, got {num_joints}")
    if width < 8 or width % 2:
        raise ConfigError(f"method.net.width must be an even number >= 8, got {width}")
    if num_blocks < 1:
        raise ConfigError(f"method.net.num_blocks must be >= 1, got {num_blocks}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"method.net.kernel_size must be odd and positive, got {kernel_size}")
    if num_context < 0:
        raise ConfigError(f"method.net.num_context must be >= 0 (0 = no context), got {num_context}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"method.net.alpha must lie in [0, 1], got {alpha}")
