"""Lightning callback: every N epochs, predicted vs ground-truth skeletons on a fixed validation batch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from matplotlib.figure import Figure

from posereg.errors import ConfigError
from posereg.geometry import back_project
from posereg.viz.figure_log import log_figure
from posereg.viz.pose_images import pose_grid, skeleton_3d

_KEYS = ("image", "joints_2d", "joints_3d", "weights", "camera", "root_depth")
DEFAULT_DEPTH_RANGE = 2000.0


def predictions(coords: torch.Tensor, batch: Mapping[str, torch.Tensor], depth_range: float
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Unit coords (B,J,2|3) -> crop pixels (B,J,2) and, for 3D, camera-frame mm (B,J,3).

    u·W, v·H give crop pixels; z_n gives depth (z_n − 0.5)·depth_range relative to the root, placed at
    the sample's root depth and back-projected with the crop camera.
    """
    h, w = batch["image"].shape[-2:]
    c = coords.detach().float().cpu()
    uv = c[..., :2] * torch.tensor([w, h], dtype=c.dtype)
    xyz = None
    if c.shape[-1] == 3 and "camera" in batch and "root_depth" in batch:
        depth = (c[..., 2] - 0.5) * depth_range + batch["root_depth"].float()[:, None]
        xyz = back_project(uv, depth, batch["camera"].float()).numpy()
    return uv.numpy(), xyz


class PoseImagesCallback(pl.Callback):
    """Log a grid of validation crops with predicted (red) and GT (green) skeletons every N epochs.

    The batch is the first validation batch seen, kept for the whole run so epochs are comparable.
    Goes to TensorBoard (add_image) and W&B (log_image) when active, else PNGs under `<run>/<dirname>/`.
    For 3D data a root-aligned 3D skeleton plot is logged too.
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 8, cols: int = 4, output: int = -1,
                 joint_set: str | None = None, depth_range: float | None = None, tag: str = "val/poses",
                 dirname: str = "pose_images", save_png: bool | None = None):
        super().__init__()
        if every_n_epochs < 1 or num_images < 1:
            raise ConfigError("callbacks pose_images: every_n_epochs and num_images must be >= 1")
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.cols = cols
        self.output = output
        self.joint_set = joint_set
        self.depth_range = depth_range
        self.tag = tag
        self.dirname = dirname
        self.save_png = save_png
        self.batch: dict[str, torch.Tensor] | None = None
        self.written: list[Path] = []

    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Keep the first validation batch (first `num_images` samples, on CPU) once."""
        if self.batch is None and batch_idx == 0 and dataloader_idx == 0 and isinstance(batch, Mapping):
            n = self.num_images
            self.batch = {k: batch[k][:n].detach().cpu() for k in _KEYS if k in batch}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Predict on the kept batch and send the figures to the active loggers."""
        if self.batch is None or not self._due(trainer) or not trainer.is_global_zero:
            return
        for tag, fig in self.figures(pl_module, self.batch, self._bones(trainer, pl_module),
                                     self._depth_range(trainer, pl_module)).items():
            self._log(trainer, tag, fig)

    def figures(self, pl_module: torch.nn.Module, batch: Mapping[str, torch.Tensor],
                bones: tuple = (), depth_range: float = DEFAULT_DEPTH_RANGE) -> dict[str, Figure]:
        """The 2D grid (and the 3D plot for 3D predictions with 3D labels) for `batch`."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                device = next(pl_module.parameters()).device
                outputs = pl_module(batch["image"].to(device))
        finally:
            pl_module.train(was_training)
        out = outputs[self.output] if isinstance(outputs, list | tuple) else outputs
        uv, xyz = predictions(out["coords"], batch, depth_range)
        weights = batch["weights"].numpy() if "weights" in batch else np.ones((*uv.shape[:2], 3), np.float32)
        figs = {
            self.tag: pose_grid(batch["image"].numpy(), uv, batch["joints_2d"].numpy(), bones,
                                weights[..., :2].min(-1) > 0, self.cols, "pred (red) vs GT (green, dashed)")
        }
        has_3d = weights[..., 2] > 0
        if xyz is not None and "joints_3d" in batch and has_3d.any():
            keep = has_3d.any(-1)
            figs[f"{self.tag}_3d"] = skeleton_3d(xyz[keep], batch["joints_3d"].numpy()[keep], bones, has_3d[keep],
                                                 title="3D, root-aligned (mm)")
        return figs

    def _bones(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple:
        from posereg.skeletons import get_joint_set

        info = getattr(getattr(trainer, "datamodule", None), "info", None)
        js = self.joint_set or getattr(pl_module, "joint_set", None) or getattr(info, "joint_set", None)
        return tuple(get_joint_set(js).bones) if js is not None else ()

    def _depth_range(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        if self.depth_range is not None:
            return float(self.depth_range)
        info = getattr(getattr(trainer, "datamodule", None), "info", None)
        codec = getattr(pl_module, "codec", None)
        return float(getattr(info, "depth_range", None) or getattr(codec, "depth_range", None)
                     or DEFAULT_DEPTH_RANGE)

    def _log(self, trainer: pl.Trainer, tag: str, fig: Figure) -> None:
        path = log_figure(trainer, tag, fig, self.dirname, self.save_png)
        if path is not None:
            self.written.append(path)
