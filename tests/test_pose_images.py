"""Pose-image callback: unit coords -> crop pixels / camera mm, and figures reaching the loggers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from posereg.viz.figure_log import figure_to_rgb
from posereg.viz.pose_callback import PoseImagesCallback, predictions
from posereg.viz.pose_images import pose_grid

BONES = ((0, 1), (1, 2))


class FixedNet(nn.Module):
    """Returns the same unit coords for every image (plus a parameter so .parameters() is non-empty)."""

    def __init__(self, coords: torch.Tensor):
        super().__init__()
        self.coords = coords
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor) -> list[dict]:
        return [{"coords": torch.zeros_like(self.coords).expand(len(image), -1, -1)},
                {"coords": self.coords.expand(len(image), -1, -1), "name": "last"}]


def _batch(n: int = 2, three_d: bool = True) -> dict[str, torch.Tensor]:
    weights = torch.ones(n, 3, 3)
    if not three_d:
        weights[..., 2] = 0
    return {
        "image": torch.randn(n, 3, 32, 64),
        "joints_2d": torch.tensor([[[10.0, 5.0], [20.0, 10.0], [30.0, 20.0]]]).expand(n, -1, -1),
        "joints_3d": torch.tensor([[[0.0, 0.0, 4e3], [100.0, 200.0, 4.1e3], [0.0, 400.0, 4e3]]]).expand(n, -1, -1),
        "weights": weights,
        "camera": torch.tensor([[1000.0, 1000.0, 32.0, 16.0]]).expand(n, -1),
        "root_depth": torch.full((n,), 4000.0),
    }


def test_unit_coords_to_pixels_and_mm() -> None:
    coords = torch.tensor([[[0.5, 0.25, 0.5], [0.75, 1.0, 0.75], [0.0, 0.5, 0.25]]])
    uv, xyz = predictions(coords, _batch(1), depth_range=2000.0)
    np.testing.assert_allclose(uv[0], [[32.0, 8.0], [48.0, 32.0], [0.0, 16.0]])
    # z_n 0.75 -> +500 mm from the 4000 mm root; x = (48 - 32) * 4500 / 1000 = 72 mm, y = (32 - 16) * 4.5
    np.testing.assert_allclose(xyz[0, 1], [72.0, 72.0, 4500.0], rtol=1e-6)
    np.testing.assert_allclose(xyz[0, 0], [0.0, -32.0, 4000.0], rtol=1e-6)
    np.testing.assert_allclose(xyz[0, 2, 2], 3500.0)
    uv2, none = predictions(coords[..., :2], _batch(1), 2000.0)
    assert none is None and np.allclose(uv2, uv)


def test_grid_figure_renders_every_sample() -> None:
    b = _batch(3)
    fig = pose_grid(b["image"].numpy(), b["joints_2d"].numpy(), b["joints_2d"].numpy(), BONES, cols=2)
    assert len([ax for ax in fig.axes if ax.images]) == 3
    arr = figure_to_rgb(fig)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


@pytest.mark.parametrize("three_d", [True, False])
def test_callback_writes_pngs_without_loggers(tmp_path: Path, three_d: bool) -> None:
    net = FixedNet(torch.tensor([[[0.5, 0.5, 0.5], [0.6, 0.5, 0.6], [0.5, 0.7, 0.5]]]))
    cb = PoseImagesCallback(every_n_epochs=2, num_images=2, joint_set=None)
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, global_step=5, is_global_zero=True,
                              loggers=[], default_root_dir=str(tmp_path), datamodule=None)
    cb.on_validation_batch_end(trainer, net, None, _batch(4, three_d), 0)
    assert cb.batch["image"].shape[0] == 2
    figs = cb.figures(net, cb.batch, BONES)
    pred_lines = figs["val/poses"].axes[0].lines
    # the last output is drawn: red skeleton joint 0 at (0.5*64, 0.5*32)
    red = [ln for ln in pred_lines if ln.get_color() == "#e53935"]
    assert red and np.allclose(red[0].get_xydata()[0], [32.0, 16.0])
    cb.on_validation_epoch_end(trainer, net)
    names = sorted(p.name for p in (tmp_path / "pose_images").iterdir())
    assert names == (["val_poses_3d_epoch0000.png", "val_poses_epoch0000.png"] if three_d
                     else ["val_poses_epoch0000.png"])
    trainer.current_epoch = 1  # not due with every_n_epochs=2
    cb.on_validation_epoch_end(trainer, net)
    assert len(list((tmp_path / "pose_images").iterdir())) == len(names)


def test_callback_logs_to_tensorboard(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version=0)
    net = FixedNet(torch.full((1, 3, 2), 0.5))
    cb = PoseImagesCallback(num_images=2)
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, global_step=3, is_global_zero=True,
                              loggers=[logger], default_root_dir=str(tmp_path), datamodule=None)
    cb.on_validation_batch_end(trainer, net, None, _batch(2, three_d=False), 0)
    cb.on_validation_epoch_end(trainer, net)
    logger.experiment.flush()
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    assert acc.Tags()["images"] == ["val/poses"]
    assert acc.Images("val/poses")[0].step == 3
    assert not (tmp_path / "pose_images").exists()
