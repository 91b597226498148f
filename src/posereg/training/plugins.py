"""The Lightning plugins of a training run: posereg's checkpoint I/O and the cluster it runs on."""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from posereg.runs.checkpoints import atomic_save
from posereg.weights import load_checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with posereg's atomic writes and safe loads."""

    def __init__(self, trust: bool = False):
        super().__init__()
        self.trust = trust

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, trust=self.trust)


def cluster_plugins() -> list:
    """Lightning plugins for the cluster this runs on: under SLURM, its environment with Lightning's own
    auto-requeue off (posereg's RequeueOnSignal and the run lifecycle do it, into last.ckpt)."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
