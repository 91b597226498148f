"""Per-joint crops of an image batch (DeepPose's N(x; b)) and the pose scale that sizes them (diam(y)).

Pixels are continuous (posereg's convention): the crop of side `s` centred at `c` spans [c - s/2, c + s/2)
on both axes, and its output pixel k (centre k + 0.5) samples the image at c - s/2 + (k + 0.5) * s / size,
bilinearly, zero outside the image (the normalised mean colour). Sampling is `grid_sample`, so the crops
are differentiable in the image (and in the boxes, though the cascade treats boxes as inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def pose_diameter(joints: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(B,) mean distance between the joints of each pair, e.g. the two torso diagonals; joints (B,J,2)."""
    idx = torch.as_tensor(pairs, dtype=torch.long, device=joints.device)
    return (joints[:, idx[:, 0]] - joints[:, idx[:, 1]]).norm(dim=-1).mean(dim=-1)


def crop_grid(centres: torch.Tensor, side: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """(B,J,size,size,2) `grid_sample` grid (align_corners=False) of square crops; centres (B,J,2), side (B,J) px."""
    steps = (torch.arange(size, device=centres.device, dtype=centres.dtype) + 0.5) / size - 0.5  # (size,)
    offsets = steps[None, None, :] * side[..., None]  # (B,J,size): pixel offsets from the centre
    x = centres[..., 0:1] + offsets  # (B,J,size)
    y = centres[..., 1:2] + offsets
    gx = (2.0 * x / width - 1.0)[:, :, None, :].expand(-1, -1, size, -1)
    gy = (2.0 * y / height - 1.0)[:, :, :, None].expand(-1, -1, -1, size)
    return torch.stack([gx, gy], dim=-1)


def joint_crops(image: torch.Tensor, centres: torch.Tensor, side: torch.Tensor, size: int) -> torch.Tensor:
    """(B,J,C,size,size) crops of side `side` (B,J) pixels centred at `centres` (B,J,2) pixels of image (B,C,H,W)."""
    b, c, h, w = image.shape
    j = centres.shape[1]
    grid = crop_grid(centres.to(image.dtype), side.to(image.dtype), size, h, w)  # (B,J,s,s,2)
    # one sampling call per batch: the J crops of a sample are stacked along the grid's height
    crops = F.grid_sample(image, grid.reshape(b, j * size, size, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=False)  # (B,C,J*s,s)
    return crops.view(b, c, j, size, size).permute(0, 2, 1, 3, 4)
