"""Parameters and multiply-accumulates (MACs) of a network at its input size, counted by PyTorch itself.

The "FLOPs" of the papers' tables (e.g. ResNet-50 at 224x224 = 4.1 G, the Integral paper's
"64*64*256*256*4 ~ 1.1 G" for a deconvolution) are multiply-accumulates of the convolution, transposed
convolution and linear layers. `torch.utils.flop_counter.FlopCounterMode` counts 2 FLOPs per multiply-add
for exactly those operators (conv, conv-transpose, mm/addmm/bmm, attention), so `macs` = counted FLOPs / 2
per image is the papers' number. BatchNorm, ReLU, pooling, softmax, additions and biases are not counted,
as in the usual tables. No per-layer formula is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from posereg.codecs import input_hw
from posereg.nets.contract import PoseNet


@dataclass(frozen=True)
class Complexity:
    """Parameter count and MACs per image of a network at input size (H, W)."""

    params: int
    macs: int
    input_hw: tuple[int, int]

    @property
    def gmacs(self) -> float:
        """MACs per image in units of 1e9."""
        return self.macs / 1e9

    def summary(self) -> str:
        """One line, e.g. '25.6 M params, 4.09 GMACs at 224×224' (3 significant digits: small nets are not 0.0)."""
        h, w = self.input_hw
        return f"{self.params / 1e6:.3g} M params, {self.gmacs:.3g} GMACs at {h}×{w}"


def model_complexity(
    net: nn.Module, input_size: int | tuple[int, int], batch: int = 1, device: str | torch.device = "cpu",
    cut: int | None = None,
) -> Complexity:
    """Params and MACs per image of `net` (already on `device`) on a zero (batch,3,H,W) image, in eval mode.

    A posereg network runs up to `cut` (its early exit: the MACs of the deployed part); parameters are
    always the whole network's. Any other module (e.g. a timm classifier) is called on the image alone.
    """
    h, w = input_hw(input_size)
    image = torch.zeros(batch, 3, h, w, device=device)
    kwargs = {"cut": cut} if isinstance(net, PoseNet) else {}
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(image, **kwargs)
    finally:
        net.train(was_training)
    params = sum(p.numel() for p in net.parameters())
    return Complexity(params=params, macs=counter.get_total_flops() // (2 * batch), input_hw=(h, w))
