"""Optional absolute root-depth estimator (SSP-Net §4.3.1): an MLP 128-128-256 on box + pooled features.

The paper feeds "normalized bounding-box coordinates" and the features F_1^3. A box alone only fixes
depth for one camera, so the box enters through the crop camera (fx, fy, cx, cy in crop pixels, i.e. the
focal length relative to the box size) and the MLP predicts the log of the person's metric extent:
pinhole geometry then gives z = (fx / W_in) * extent (the crop spans W_in pixels). Ground-truth root
depth ("AZ") stays the default everywhere; this module is used only when a config asks for it.
"""

from __future__ import annotations

import torch
from torch import nn

from posereg.errors import ConfigError


def box_features(camera: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """Crop camera (B,4) -> (B,4): log(fx/W), log(fy/H), cx/W - 0.5, cy/H - 0.5."""
    if camera.dim() != 2 or camera.shape[-1] != 4:
        raise ConfigError(f"root-depth MLP needs crop cameras of shape (B,4), got {tuple(camera.shape)}")
    h, w = input_size
    fx, fy, cx, cy = camera.unbind(-1)
    return torch.stack(
        [torch.log(fx.clamp_min(1e-6) / w), torch.log(fy.clamp_min(1e-6) / h), cx / w - 0.5, cy / h - 0.5],
        dim=-1,
    )


class RootDepthMLP(nn.Module):
    """Absolute root depth in mm from globally pooled features (B,C,h,w) and the crop camera (B,4)."""

    def __init__(
        self,
        feature_channels: int,
        hidden: tuple[int, ...] = (128, 128, 256),
        extent_mm: float = 2000.0,
        detach_features: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = feature_channels + 4
        for n in hidden:
            layers += [nn.Linear(width, n), nn.ReLU()]
            width = n
        last = nn.Linear(width, 1)
        # Start at the prior extent (exp(0) * extent_mm), so the first estimates are of the right order.
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*layers, last)
        self.extent_mm = extent_mm
        self.detach_features = detach_features

    def forward(
        self, features: torch.Tensor, camera: torch.Tensor, input_size: tuple[int, int]
    ) -> torch.Tensor:
        """(B,C,h,w) features, (B,4) crop camera, (H_in, W_in) -> root depth (B,) in mm."""
        pooled = features.mean(dim=(2, 3))
        if self.detach_features:
            pooled = pooled.detach()
        box = box_features(camera.to(pooled.dtype), input_size)
        log_extent = self.mlp(torch.cat([pooled, box], dim=-1)).squeeze(-1)
        return torch.exp(box[:, 0] + log_extent) * self.extent_mm


def root_depth_loss(pred_mm: torch.Tensor, target_mm: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean L1 error in metres over samples with a valid 3D root (`valid` (B,) bool or 0/1)."""
    w = valid.to(pred_mm.dtype)
    return ((pred_mm - target_mm).abs() / 1000.0 * w).sum() / w.sum().clamp_min(1.0)
