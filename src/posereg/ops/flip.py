"""Horizontal-flip test-time augmentation helpers for maps and unit coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from posereg.errors import ConfigError


def _index(flip_index: Sequence[int] | torch.Tensor, num_joints: int, device: torch.device) -> torch.Tensor:
    idx = torch.as_tensor(flip_index, dtype=torch.long, device=device)
    if idx.dim() != 1 or idx.numel() != num_joints:
        raise ConfigError(f"flip_index must list one source joint per joint ({num_joints}), got {idx.numel()}")
    return idx


def flip_maps(maps: torch.Tensor, flip_index: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Mirror (B,J,...,W) maps along W and swap joints: out[:, j] = flip(maps[:, flip_index[j]])."""
    idx = _index(flip_index, maps.shape[1], maps.device)
    return maps.flip(-1).index_select(1, idx)


def flip_coords_unit(coords: torch.Tensor, flip_index: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Mirror (B,J,2|3) unit coords: x -> 1 - x (y, z kept) and swap left/right joints.

    In the `center` convention cell j (centre (j+0.5)/w) mirrors to cell w-1-j, whose centre is
    1 - (j+0.5)/w, so u -> 1 - u is exact for points and cell centres alike.
    """
    idx = _index(flip_index, coords.shape[-2], coords.device)
    out = coords.index_select(-2, idx).clone()
    out[..., 0] = 1.0 - out[..., 0]
    return out


def average_flip(pred: torch.Tensor, pred_flipped_back: torch.Tensor) -> torch.Tensor:
    """Mean of a prediction and the prediction on the flipped input mapped back to the original frame."""
    if pred.shape != pred_flipped_back.shape:
        raise ConfigError(
            f"flip averaging needs equal shapes, got {tuple(pred.shape)} and {tuple(pred_flipped_back.shape)}"
        )
    return 0.5 * (pred + pred_flipped_back)
