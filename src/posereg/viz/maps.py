"""Figures of learned part and context maps over the input crop (Luvizon'17 Fig. 5/6 style)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch

# Figures are built without pyplot: no global backend state, safe on headless workers (Agg canvas).
from matplotlib.figure import Figure

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class MapSample:
    """One sample's image and one network output, as numpy arrays (coordinates in unit coords)."""

    image: np.ndarray  # (H,W,3) in [0,1]
    part_maps: np.ndarray  # (J,h,w) raw logits
    coords: np.ndarray  # (J,2) final (aggregated) prediction
    part_coords: np.ndarray | None = None  # (J,2) prediction from the part maps alone
    context_maps: np.ndarray | None = None  # (J,Nc,h,w) raw logits
    context_coords: np.ndarray | None = None  # (J,Nc,2)
    context_prob: np.ndarray | None = None  # (J,Nc)
    gt: np.ndarray | None = None  # (J,2)
    gt_valid: np.ndarray | None = None  # (J,) bool


def softmax2d(maps: np.ndarray) -> np.ndarray:
    """Spatial softmax over the last two axes."""
    flat = maps.reshape(*maps.shape[:-2], -1)
    flat = np.exp(flat - flat.max(axis=-1, keepdims=True))
    return (flat / flat.sum(axis=-1, keepdims=True)).reshape(maps.shape)


def denormalize(image: torch.Tensor | np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Normalized (3,H,W) image -> (H,W,3) RGB in [0,1]."""
    img = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    img = img.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return np.clip(img, 0.0, 1.0)


def _np(x: torch.Tensor | None) -> np.ndarray | None:
    return None if x is None else x.detach().float().cpu().numpy()


def sample_from_outputs(batch: Mapping, output: Mapping, index: int = 0,
                        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> MapSample:
    """Pick sample `index` of a batch and one network output dict (Luvizon'17 keys) as a MapSample."""
    h, w = batch["image"].shape[-2:]
    gt = valid = None
    if "joints_2d" in batch:
        gt = _np(batch["joints_2d"][index]) / np.array([w, h], dtype=np.float32)
        valid = _np(batch["weights"][index, :, :2]).min(axis=-1) > 0 if "weights" in batch else None
    return MapSample(
        image=denormalize(batch["image"][index], mean, std),
        part_maps=_np(output["maps"][index]),
        coords=_np(output["coords"][index])[:, :2],
        part_coords=_np(output["part_coords"][index]) if "part_coords" in output else None,
        context_maps=_np(output["context_maps"][index]) if "context_maps" in output else None,
        context_coords=_np(output["context_coords"][index]) if "context_coords" in output else None,
        context_prob=_np(output["context_prob"][index]) if "context_prob" in output else None,
        gt=gt,
        gt_valid=valid,
    )


def _joint_colors(n: int) -> np.ndarray:
    """One RGB colour per joint."""
    return matplotlib.colormaps["hsv"](np.linspace(0.0, 1.0, n, endpoint=False))[:, :3]


def encode_maps_rgb(prob: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(J,h,w) normalized maps -> (h,w,3) image: each joint in its colour, each map scaled to peak 1."""
    peak = prob / np.maximum(prob.max(axis=(1, 2), keepdims=True), 1e-12)
    return np.clip(np.einsum("jhw,jc->hwc", peak, colors), 0.0, 1.0)


def _show(ax, image: np.ndarray, overlay: np.ndarray | None = None, cmap: str = "jet") -> None:
    """Image with an optional low-resolution map stretched over the whole crop."""
    hh, ww = image.shape[:2]
    ax.imshow(image, extent=(0, ww, hh, 0))
    if overlay is not None:
        kw = {} if overlay.ndim == 3 else {"cmap": cmap}
        ax.imshow(overlay, extent=(0, ww, hh, 0), alpha=0.55, interpolation="bilinear", **kw)
    ax.set_xlim(0, ww)
    ax.set_ylim(hh, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_pose(ax, xy: np.ndarray, size: tuple[int, int], bones: Sequence[tuple[int, int]],
               colors: np.ndarray, style: str = "-", valid: np.ndarray | None = None) -> None:
    """Skeleton in pixel coordinates of the shown crop."""
    px = xy * np.array([size[1], size[0]])
    ok = np.ones(len(xy), bool) if valid is None else valid
    for p, c in bones:
        if ok[p] and ok[c]:
            ax.plot(px[[p, c], 0], px[[p, c], 1], style, color=colors[c], lw=2)
    ax.scatter(px[ok, 0], px[ok, 1], s=12, c=colors[ok], edgecolors="k", linewidths=0.5, zorder=3)


def part_context_figure(sample: MapSample, joint_names: Sequence[str] | None = None,
                        joints: Sequence[int] | None = None, bones: Sequence[tuple[int, int]] = (),
                        max_joints: int = 4) -> Figure:
    """Top row: image, all part maps colour-coded, pose; then per joint its part and context maps."""
    img = sample.image
    size = img.shape[:2]
    num_j = sample.part_maps.shape[0]
    names = list(joint_names) if joint_names is not None else [f"joint {j}" for j in range(num_j)]
    sel = list(joints) if joints is not None else list(range(0, num_j, max(1, num_j // max_joints)))[:max_joints]
    nc = 0 if sample.context_maps is None else sample.context_maps.shape[1]
    cols = max(3, 1 + nc)
    colors = _joint_colors(num_j)
    part_prob = softmax2d(sample.part_maps)
    fig = Figure(figsize=(2.6 * cols, 2.6 * (1 + len(sel))))
    axes = fig.subplots(1 + len(sel), cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")

    _show(axes[0, 0], img)
    axes[0, 0].set_title("input", fontsize=8)
    _show(axes[0, 1], img, encode_maps_rgb(part_prob, colors))
    axes[0, 1].set_title("part maps (softmax)", fontsize=8)
    _show(axes[0, 2], img)
    if sample.gt is not None:
        _draw_pose(axes[0, 2], sample.gt, size, bones, colors * 0 + 1.0, ":", sample.gt_valid)
    if sample.part_coords is not None and nc:
        _draw_pose(axes[0, 2], sample.part_coords, size, bones, colors * 0.5, "--")
    _draw_pose(axes[0, 2], sample.coords, size, bones, colors)
    axes[0, 2].set_title("pose (dashed: parts only, dotted: GT)" if nc else "pose (dotted: GT)", fontsize=8)

    for r, j in enumerate(sel, start=1):
        px = np.array([size[1], size[0]])
        ax = axes[r, 0]
        _show(ax, img, part_prob[j])
        src = sample.part_coords if sample.part_coords is not None else sample.coords
        ax.plot(*(src[j] * px), "w+", ms=10, mew=2)
        ax.plot(*(sample.coords[j] * px), "mx", ms=8, mew=2)
        ax.set_title(f"{names[j]}: part map (+ part, x final)", fontsize=8)
        for i in range(nc):
            ax = axes[r, 1 + i]
            _show(ax, img, softmax2d(sample.context_maps[j, i]))
            if sample.context_coords is not None:
                ax.plot(*(sample.context_coords[j, i] * px), "w+", ms=10, mew=2)
            p = "" if sample.context_prob is None else f" p={sample.context_prob[j, i]:.2f}"
            ax.set_title(f"{names[j]}: context {i + 1}{p}", fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write the figure as PNG (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
