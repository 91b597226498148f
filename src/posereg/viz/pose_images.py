"""Figures of predicted vs ground-truth skeletons: a 2D grid over crops and a 3D skeleton plot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from posereg.viz.axes3d import plot_bone, square_axes

PRED_COLOR = "#e53935"
GT_COLOR = "#43a047"


def to_display(image: np.ndarray) -> np.ndarray:
    """(3,H,W) normalized float image -> (H,W,3) in [0,1] by per-image min-max (any normalization)."""
    img = np.asarray(image, dtype=np.float32).transpose(1, 2, 0)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _draw_2d(ax, joints: np.ndarray, mask: np.ndarray, bones: Sequence[tuple[int, int]], color: str,
             style: str) -> None:
    for a, b in bones:
        if mask[a] and mask[b]:
            ax.plot(joints[[a, b], 0], joints[[a, b], 1], style, color=color, lw=1.5)
    ax.scatter(joints[mask, 0], joints[mask, 1], s=8, color=color, zorder=3)


def pose_grid(images: np.ndarray, pred: np.ndarray, gt: np.ndarray, bones: Sequence[tuple[int, int]],
              mask: np.ndarray | None = None, cols: int = 4, title: str = "") -> Figure:
    """Crops with predicted (red) and ground-truth (green, dashed) skeletons; joints in crop pixels."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    mask = np.ones(pred.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows + (0.4 if title else 0)))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        img = to_display(images[i])
        ax.imshow(img, extent=(0, img.shape[1], img.shape[0], 0))  # pixel centres at +0.5 (DESIGN §3)
        _draw_2d(ax, gt[i], mask[i], bones, GT_COLOR, "--")
        _draw_2d(ax, pred[i], np.ones_like(mask[i]), bones, PRED_COLOR, "-")
        ax.set_xlim(0, img.shape[1])
        ax.set_ylim(img.shape[0], 0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def skeleton_3d(pred: np.ndarray, gt: np.ndarray, bones: Sequence[tuple[int, int]],
                mask: np.ndarray | None = None, root: int = 0, max_poses: int = 4, title: str = "") -> Figure:
    """Root-aligned 3D skeletons in mm (camera frame, y down shown up), predicted red vs GT green."""
    n = min(len(pred), max_poses)
    mask = np.ones(pred.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    fig = Figure(figsize=(3.2 * n, 3.4))
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1, projection="3d")
        for joints, color, style, m in ((gt[i], GT_COLOR, "--", mask[i]), (pred[i], PRED_COLOR, "-", None)):
            p = joints - joints[root]
            m = np.ones(len(p), bool) if m is None else m
            for a, b in bones:
                if m[a] and m[b]:
                    plot_bone(ax, p, a, b, style, color=color, lw=1.5)
        square_axes(ax, max(float(np.abs(gt[i] - gt[i][root])[mask[i]].max(initial=1.0)), 1.0))
    if title:
        fig.suptitle(title)
    return fig

