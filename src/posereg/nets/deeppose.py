"""DeepPose's cascade (Toshev & Szegedy, CVPR'14): R1 as stage 1, then one joint-crop refiner per stage.

Stage 1 is posereg's R1 network (`RegressionNet`: backbone, global average pool, linear). Stage s >= 2
(`JointRefiner`) cuts, for every joint i, a square of side sigma * diam(y^{s-1}) centred on stage s-1's
estimate y_i^{s-1} out of the input image (`posereg.ops.joint_crops`, resampled to crop_size²), runs one trunk
shared by all joints on the J crops (the paper's one network θ_s per stage) and a per-joint linear layer
regresses the joint's correction ψ_i in crop units (the paper's N(y_i; b) = (y_i - b_c) / b_w):
y_i^s = y_i^{s-1} + side * ψ_i. diam(y) is the mean length of the `diameter` joint pairs (the torso
diagonals). Every stage is an output (`stage1` ... `stageS`) and `cut` stops after any of them.

Stage s reads stage s-1's estimate as a fixed input (detached), as in the paper, whose stages are trained one
after another; `freeze(n)` fixes the first n stages (weights and BatchNorm statistics) for that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from posereg.errors import ConfigError, require_int
from posereg.nets.backbone import Backbone
from posereg.nets.contract import Output, PoseNet
from posereg.nets.integral_net import RegressionNet
from posereg.ops.joint_crops import joint_crops, pose_diameter
from posereg.skeletons import get_joint_set

Boxes = tuple[torch.Tensor, torch.Tensor]
BoxRule = Callable[[torch.Tensor, torch.Tensor], Boxes]


class JointRefiner(nn.Module):
    """One cascade stage: a shared trunk on every joint's crop, a linear layer per joint -> (B,J,2) corrections."""

    def __init__(self, backbone: Backbone, num_joints: int, crop_size: int):
        super().__init__()
        self.backbone = backbone
        self.crop_size = crop_size
        self.pool = nn.AdaptiveAvgPool2d(1)
        # near zero: a fresh stage starts as the identity (no correction), so it never starts worse
        self.weight = nn.Parameter(torch.randn(num_joints, backbone.out_channels, 2) * 1e-3)
        self.bias = nn.Parameter(torch.zeros(num_joints, 2))

    def forward(self, image: torch.Tensor, centres: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Corrections ψ (B,J,2) in crop units for crops at `centres` (B,J,2) px of side `side` (B,J) px."""
        b, j = centres.shape[:2]
        crops = joint_crops(image, centres, side, self.crop_size)  # (B,J,3,s,s)
        feat = self.pool(self.backbone(crops.flatten(0, 1))[-1]).flatten(1).view(b, j, -1)  # (B,J,C)
        return torch.einsum("bjc,jcd->bjd", feat, self.weight) + self.bias


class DeepPoseCascade(PoseNet):
    """R1 (stage 1) followed by `stages - 1` joint-crop refiners; outputs `stage1` ... `stageS`."""

    produces_maps = False

    def __init__(
        self,
        backbone: Backbone,
        refiner_backbone: Callable[[], Backbone],
        stages: int,
        crop_size: int,
        sigma: float,
        diameter: Sequence[Sequence[str]],
        joint_set: str,
        num_joints: int,
        dims: int,
        input_size: Any = None,
    ):
        super().__init__()
        if dims != 2:
            raise ConfigError(f"method.dims={dims}: DeepPose's cascade regresses 2D joints (crops of the image)")
        stages = require_int(stages, "method.cascade.stages", 1)
        if stages < 2:
            raise ConfigError(f"method.cascade.stages={stages}: the cascade's first stage alone is R1, train it with "
                              "method=r1; stages >= 2 add refiners")
        self.crop_size = require_int(crop_size, "method.cascade.crop_size", 1)
        self.sigma = float(sigma)
        if not self.sigma > 0:
            raise ConfigError(f"method.cascade.sigma={sigma} must be positive (crop side = sigma * diam(y))")
        self.diameter = [tuple(str(n) for n in pair) for pair in diameter]
        self.pairs = diameter_pairs(self.diameter, joint_set)
        self.num_joints = num_joints
        self.stage1 = RegressionNet(backbone, num_joints, dims, input_size)
        self.refiners = nn.ModuleList(JointRefiner(refiner_backbone(), num_joints, self.crop_size)
                                      for _ in range(stages - 1))
        self.output_names = [f"stage{s + 1}" for s in range(stages)]
        self.frozen = 0

    @property
    def diameter_joints(self) -> list[int]:
        """Indices of the joints diam(y) reads."""
        return sorted({j for pair in self.pairs for j in pair})

    def stages(self) -> list[nn.Module]:
        """The stage modules in order: R1, then the refiners."""
        return [self.stage1, *self.refiners]

    def trunk(self, stage: int) -> nn.Module:
        """The feature extractor of stage `stage` (1-based): R1's backbone, then each refiner's."""
        return self.stage1.backbone if stage == 1 else self.refiners[stage - 2].backbone

    def warm_start(self, stage: int) -> None:
        """Start stage `stage`'s trunk from stage `stage - 1`'s weights and BatchNorm statistics."""
        self.trunk(stage).load_state_dict(self.trunk(stage - 1).state_dict())

    def freeze(self, count: int) -> None:
        """Fix the first `count` stages: no gradients, BatchNorm in eval mode whatever `train()` says."""
        self.frozen = int(count)
        for stage in self.stages()[: self.frozen]:
            stage.requires_grad_(False)
            stage.eval()

    def train(self, mode: bool = True) -> DeepPoseCascade:
        """`nn.Module.train`, the frozen stages staying in eval mode."""
        super().train(mode)
        for stage in self.stages()[: self.frozen]:
            stage.eval()
        return self

    def boxes(self, coords: torch.Tensor, image: torch.Tensor) -> Boxes:
        """Crop centres (B,J,2) and sides (B,J) in pixels around unit `coords` (B,J,2): side = sigma * diam."""
        h, w = image.shape[-2:]
        centres = coords.detach()[..., :2] * coords.new_tensor([float(w), float(h)])
        side = (self.sigma * pose_diameter(centres, self.pairs)).clamp_min(1.0)  # never a zero-size crop
        return centres, side[:, None].expand(-1, centres.shape[1])

    def refine(self, stage: int, image: torch.Tensor, centres: torch.Tensor, side: torch.Tensor) -> Output:
        """Output of stage `stage` (>= 2) from crops at `centres` (B,J,2) px of side `side` (B,J) px."""
        h, w = image.shape[-2:]
        scale = centres.new_tensor([float(w), float(h)])
        psi = self.refiners[stage - 2](image, centres, side)
        side2 = side[..., None]
        return {"name": self.output_names[stage - 1], "coords": (centres + psi * side2) / scale,
                "crop_centre": centres / scale, "crop_side": side2 / scale}

    def forward(self, image: torch.Tensor, cut: int | None = None, boxes: BoxRule | None = None) -> list[Output]:
        """Stages 1..cut+1 (all when None); `boxes` (training) places the last computed stage's crops instead."""
        n = self.stop_at(cut)
        outputs = [{**self.stage1(image)[0], "name": self.output_names[0]}]
        for stage in range(2, n + 1):
            rule = boxes if boxes is not None and stage == n else self.boxes
            outputs.append(self.refine(stage, image, *rule(outputs[-1]["coords"], image)))
        return outputs


def diameter_pairs(diameter: Sequence[Sequence[str]], joint_set: str) -> list[tuple[int, int]]:
    """Joint index pairs of `method.cascade.diameter` in the joint set; ConfigError naming an unknown joint."""
    js = get_joint_set(joint_set)
    if not diameter or any(len(pair) != 2 for pair in diameter):
        raise ConfigError(f"method.cascade.diameter={list(map(list, diameter))}: give pairs of joint names, e.g. "
                          "[[l_shoulder, r_hip], [r_shoulder, l_hip]]")
    for name in (n for pair in diameter for n in pair):
        if name not in js.names:
            raise ConfigError(f"method.cascade.diameter: joint {name!r} is not in joint set {js.name} "
                              f"({', '.join(js.names)})")
    return [(js.index(a), js.index(b)) for a, b in diameter]
