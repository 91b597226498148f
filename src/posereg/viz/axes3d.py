"""3D skeleton axes shared by the prediction overlays and the training-time pose images."""

from __future__ import annotations

from typing import Any

import numpy as np


def plot_bone(ax: Any, points: np.ndarray, a: int, b: int, *args: Any, **kwargs: Any) -> None:
    """Draw bone a-b of camera-frame (J,3) points on a 3D matplotlib axis, person upright."""
    # camera x right, z forward, y down -> plot (x, z, -y) so the person stands upright
    ax.plot(points[[a, b], 0], points[[a, b], 2], -points[[a, b], 1], *args, **kwargs)


def square_axes(ax: Any, lim: float) -> None:
    """Equal ±lim mm limits on the three axes, labelled, with small ticks."""
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_zlim(-lim, lim)
    ax.set_xlabel("x (mm)", fontsize=7)
    ax.set_ylabel("z (mm)", fontsize=7)
    ax.tick_params(labelsize=6)
