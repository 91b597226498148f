"""Predictions drawn on original images: 2D skeletons with OpenCV, and a 3D skeleton side panel."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure

from posereg.skeletons import get_joint_set
from posereg.viz.axes3d import plot_bone, square_axes
from posereg.viz.figure_log import figure_to_rgb

LEFT, RIGHT, CENTRE = (60, 120, 255), (255, 80, 60), (60, 220, 60)  # RGB, as posereg-show
BOX = (255, 210, 0)
_SHIFT = 4  # OpenCV sub-pixel bits: points are drawn at 1/16 pixel precision
_COLOUR = {"l": LEFT, "r": RIGHT, "c": CENTRE}


def _fixed(p: np.ndarray) -> tuple[int, int]:
    """A continuous point (pixel centre at +0.5) as OpenCV's fixed-point pixel index."""
    return int(round((p[0] - 0.5) * (1 << _SHIFT))), int(round((p[1] - 0.5) * (1 << _SHIFT)))


def draw_pose(image: np.ndarray, joints_2d: np.ndarray, joint_set: str, box: Sequence[float] | None = None,
              conf: np.ndarray | None = None, conf_thr: float = 0.0) -> np.ndarray:
    """Draw one skeleton (left blue, right red, centre green) and its box (xywh) on an RGB uint8 image; returns it.

    Draws in place when the image is C-contiguous (OpenCV needs that), else on a contiguous copy.
    """
    js = get_joint_set(joint_set)
    image = np.ascontiguousarray(image)
    pts = np.asarray(joints_2d, dtype=np.float64)
    shown = np.ones(len(pts), bool) if conf is None else np.asarray(conf) >= conf_thr
    shown &= np.isfinite(pts).all(axis=1)
    # lines and dots grow with the image so they stay visible on large photos and small crops alike
    width = max(1, int(round(max(image.shape[:2]) / 300)))
    radius = (2 + width) << _SHIFT
    if box is not None:
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(image, _fixed(np.array([x + 0.5, y + 0.5])), _fixed(np.array([x + w - 0.5, y + h - 0.5])),
                      BOX, width, cv2.LINE_AA, _SHIFT)
    for a, b in js.bones:
        if shown[a] and shown[b]:
            side = js.side(b) if js.side(b) != "c" else js.side(a)
            cv2.line(image, _fixed(pts[a]), _fixed(pts[b]), _COLOUR[side], width + 1, cv2.LINE_AA, _SHIFT)
    for j in np.flatnonzero(shown):
        cv2.circle(image, _fixed(pts[j]), radius, _COLOUR[js.side(j)], -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(image, _fixed(pts[j]), radius, (255, 255, 255), 1, cv2.LINE_AA, _SHIFT)
    return image


def skeleton_panel(poses_mm: Sequence[np.ndarray], joint_set: str, side: int) -> np.ndarray:
    """(side, side, 3) uint8 RGB plot of root-relative camera-frame skeletons in mm, one colour set per person."""
    js = get_joint_set(joint_set)
    dpi = 100
    fig = Figure(figsize=(side / dpi, side / dpi), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    ax.view_init(elev=15, azim=-70)  # nearly the camera's view, turned a little to show depth
    lim = 1000.0
    for pose in poses_mm:
        p = np.asarray(pose, dtype=np.float64)
        if not np.isfinite(p).all():
            continue
        lim = max(lim, float(np.abs(p).max()))
        for a, b in js.bones:
            side_ab = js.side(b) if js.side(b) != "c" else js.side(a)
            colour = np.array(_COLOUR[side_ab]) / 255.0
            plot_bone(ax, p, a, b, color=colour, lw=2)
    square_axes(ax, lim)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    rgb = figure_to_rgb(fig)
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA) if rgb.shape[:2] != (side, side) else rgb


def beside(image: np.ndarray, panel: np.ndarray) -> np.ndarray:
    """The image with a panel of the same height on its right (the panel is resized to fit)."""
    h = image.shape[0]
    if panel.shape[0] != h:
        w = max(1, int(round(panel.shape[1] * h / panel.shape[0])))
        panel = cv2.resize(panel, (w, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([image, panel], axis=1)
