"""Direct regression head (R1): global average pool, then one linear layer to J x (2|3) coordinates."""

from __future__ import annotations

import torch
from torch import nn


class RegressionHead(nn.Module):
    """Global average pool -> linear -> (B,J,dims) unit coordinates (offset 0.5 so zero output = centre)."""

    def __init__(self, in_channels: int, num_joints: int, dims: int = 2):
        super().__init__()
        self.num_joints = num_joints
        self.dims = dims
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_joints * dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unit coordinates (B,J,dims); the authors regress x/W - 0.5, i.e. the same up to the offset."""
        y = self.fc(self.pool(x).flatten(1))
        return y.view(-1, self.num_joints, self.dims) + 0.5
