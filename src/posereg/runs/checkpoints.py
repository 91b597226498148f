"""Checkpoint files: loaded without running foreign code, written atomically, damaged ones set aside.

Every load uses `torch.load(weights_only=True)` with the few globals that Lightning and posereg
checkpoints hold allow-listed, so a crafted file cannot execute code. A file that needs anything else is
refused with a message naming it; `trust_checkpoints=true` loads it with full unpickling, for files the
user trusts. Writes go to a temporary file in the checkpoint's own directory, are fsync'ed and renamed over
the target, so a killed process or a full disk never leaves a partial checkpoint under the real name.
"""

from __future__ import annotations

import collections
import errno
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from posereg.errors import ConfigError
from posereg.jsonio import fresh_temp

# What posereg/Lightning checkpoints contain beyond tensors and plain containers: MultiStepLR's milestones.
SAFE_GLOBALS: list[Any] = [collections.Counter, collections.defaultdict]
TRUST_HINT = "if you trust the file, load it with trust_checkpoints=true"


class DamagedCheckpointError(ConfigError):
    """A checkpoint file that cannot be read (empty, truncated, not a checkpoint)."""


class UntrustedCheckpointError(ConfigError):
    """A checkpoint that needs more than tensors and plain containers to load: refused unless trusted."""


def load_checkpoint(path: str | Path, trust: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict of `path`, loaded safely (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise DamagedCheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            # full unpickling only when the user vouched for the file
            return torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            detail = str(err).split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0]
            raise UntrustedCheckpointError(f"checkpoint {path} needs more than tensors to load ({detail}); "
                                           f"posereg does not unpickle arbitrary objects: {TRUST_HINT}") from None
        raise DamagedCheckpointError(f"checkpoint {path} is damaged ({err})") from None
    except OSError as err:
        if err.errno not in (None, errno.EIO):
            raise  # unreadable (permissions, ...): not a damaged file
        raise DamagedCheckpointError(f"checkpoint {path} is damaged ({err})") from None
    except Exception as err:  # noqa: BLE001 - garbage bytes make the unpickler fail in many ways
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DamagedCheckpointError(f"checkpoint {path} is damaged ({first})") from None


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to `path` through a temporary file in the same directory (fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = fresh_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with posereg's atomic writes and safe loads."""

    def __init__(self, trust: bool = False):
        super().__init__()
        self.trust = trust

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, trust=self.trust)
