"""A run's checkpoint files: written atomically, and reduced to the weights once a run is done.

Writes go to a temporary file in the checkpoint's own directory, are fsync'ed and renamed over the target, so a
killed process or a full disk never leaves a partial checkpoint under the real name; loads never run foreign
code (`posereg.weights.load_checkpoint`). Lightning writes and reads them through
`posereg.training.plugins.SafeCheckpointIO`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from posereg.jsonio import atomic_open
from posereg.weights import load_checkpoint


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to `path` through a temporary file in the same directory (fsync, rename)."""
    with atomic_open(Path(path)) as f:
        torch.save(obj, f)


def weights_only_copy(path: Path) -> int:
    """Rewrite a finished run's checkpoint with the model weights and their bookkeeping only (no optimizer,
    scheduler, loop or callback states): evaluation and prediction still load it, resuming a fit does not.
    Returns the bytes saved."""
    path = Path(path)
    before = path.stat().st_size
    ckpt = load_checkpoint(path)
    keep = {k: ckpt[k] for k in ("state_dict", "epoch", "global_step", "pytorch-lightning_version") if k in ckpt}
    keep["posereg_weights_only"] = True
    atomic_save(keep, path)
    return before - path.stat().st_size
