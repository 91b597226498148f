"""Lightning callback logging a validation sample's learned part/context maps every N epochs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from matplotlib.figure import Figure

from posereg.errors import ConfigError
from posereg.viz.figure_log import log_figure
from posereg.viz.maps import IMAGENET_MEAN, IMAGENET_STD, part_context_figure, sample_from_outputs

_BATCH_KEYS = ("image", "joints_2d", "weights")


class PartMapsCallback(pl.Callback):
    """Every `every_n_epochs` validation epochs, draw one sample's part and context maps and log it.

    The figure goes to TensorBoard (add_figure) and W&B (log_image) when those loggers are active;
    otherwise, or with `save_png=True`, a PNG is written under `<default_root_dir>/<dirname>/`.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        sample_index: int = 0,
        output: int | str = -1,
        joints: Sequence[int] | None = None,
        joint_set: str | None = None,
        max_joints: int = 4,
        tag: str = "maps/part_context",
        dirname: str = "maps",
        save_png: bool | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        super().__init__()
        if every_n_epochs < 1:
            raise ConfigError(f"callbacks.part_maps.every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.sample_index = sample_index
        self.output = output
        self.joints = list(joints) if joints is not None else None
        self.joint_set = joint_set
        self.max_joints = max_joints
        self.tag = tag
        self.dirname = dirname
        self.save_png = save_png
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._batch: dict[str, torch.Tensor] | None = None
        self.last_png: Path | None = None

    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the first validation batch's sample (on CPU) when a figure is due this epoch."""
        if batch_idx == 0 and dataloader_idx == 0 and self._due(trainer) and isinstance(batch, Mapping):
            i = self.sample_index
            self._batch = {k: batch[k][i:i + 1].detach().cpu() for k in _BATCH_KEYS if k in batch}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Run the network on the kept sample and send the figure to the active loggers."""
        if self._batch is None or not self._due(trainer):
            return
        batch, self._batch = self._batch, None
        if not trainer.is_global_zero:
            return
        fig = self.make_figure(pl_module, batch)
        if fig is not None:
            self._log(trainer, fig)

    def make_figure(self, pl_module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> Figure | None:
        """Figure for sample 0 of `batch`; None when the chosen output has no maps."""
        net = getattr(pl_module, "net", pl_module)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                outputs = net(batch["image"].to(next(net.parameters()).device))
        finally:
            net.train(was_training)
        out = _pick(outputs, self.output)
        if "maps" not in out or out["maps"].dim() != 4:
            return None
        names, bones = self._skeleton(pl_module, out["maps"].shape[1])
        sample = sample_from_outputs(batch, out, 0, self.mean, self.std)
        return part_context_figure(sample, names, self.joints, bones, self.max_joints)

    def _skeleton(self, pl_module: torch.nn.Module, num_joints: int):
        """Joint names and bones from the configured joint set, when it is known and matches."""
        from posereg.skeletons import get_joint_set

        name = self.joint_set or getattr(pl_module, "joint_set_name", None)
        js = getattr(pl_module, "joint_set", None)
        if js is None and isinstance(name, str):
            js = get_joint_set(name)
        if isinstance(js, str):
            js = get_joint_set(js)
        if js is None or js.num_joints != num_joints:
            return None, ()
        return js.names, js.bones

    def _log(self, trainer: pl.Trainer, fig: Figure) -> None:
        """To TensorBoard / W&B; PNG under the run dir when neither is active."""
        path = log_figure(trainer, self.tag, fig, self.dirname, self.save_png)
        if path is not None:
            self.last_png = path


def _pick(outputs: Any, which: int | str) -> Mapping[str, torch.Tensor]:
    """One output dict of a network's list[dict] by index or name (a lone dict is returned as is)."""
    if isinstance(outputs, Mapping):
        return outputs
    if isinstance(which, str):
        for out in outputs:
            if out.get("name") == which:
                return out
        raise ConfigError(
            f"callbacks.part_maps.output={which!r} names no network output; "
            f"choose one of {[o.get('name') for o in outputs]}"
        )
    return outputs[which]
