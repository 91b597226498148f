"""Send a matplotlib figure to the active loggers (TensorBoard, W&B), or to a PNG under the run directory."""

from __future__ import annotations

import re
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a figure to an (H,W,3) uint8 array with the Agg canvas."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def log_figure(trainer: pl.Trainer, tag: str, fig: Figure, dirname: str, save_png: bool | None = None) -> Path | None:
    """Log to every TensorBoard / W&B logger; write `<run>/<dirname>/<tag>_epochNNNN.png` when neither
    is active (or save_png=True). Returns the PNG path if one was written."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    step, shown = trainer.global_step, False
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, figure_to_rgb(fig), global_step=step, dataformats="HWC")
            shown = True
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[figure_to_rgb(fig)], step=step)
            shown = True
    if not (save_png or (save_png is None and not shown)):
        return None
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)
    path = Path(trainer.default_root_dir) / dirname / f"{stem}_epoch{trainer.current_epoch:04d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
