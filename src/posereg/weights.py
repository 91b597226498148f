"""Loading weights without running foreign code: safe checkpoint reads and name/shape-matched loading.

Every load uses `torch.load(weights_only=True)` with the few globals that Lightning and posereg
checkpoints hold allow-listed, so a crafted file cannot execute code; a file that needs anything else is
refused with a message naming it (`trust_checkpoints=true` loads it with full unpickling); a `.safetensors`
file holds tensors only and is read by safetensors. `load_matching` loads the tensors of a state dict that
match a model by name and shape, after removing a wrapper prefix, and fails when too few do (a checkpoint of
another network loads nothing useful). `save_weights` writes a state dict in the formats `load_checkpoint` reads.
"""

from __future__ import annotations

import collections
import errno
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posereg.errors import ConfigError

# numpy arrays and scalars as pickled by numpy 1.x (numpy.core) and 2.x (numpy._core): RNG states and callback
# states of Lightning checkpoints (posereg's own up to 269186e stored numpy's RNG state as an array). Only
# numeric dtypes: an object array could carry anything.
_NUMPY_CORE = np._core.multiarray
NUMPY_DTYPES = tuple(getattr(np.dtypes, f"{kind}DType") for kind in (
    "Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float16", "Float32",
    "Float64", "Complex64", "Complex128"))
NUMPY_GLOBALS: list[Any] = [
    np.ndarray, np.dtype, *NUMPY_DTYPES,
    *((fn, f"{module}.multiarray.{fn.__name__}") for fn in (_NUMPY_CORE._reconstruct, _NUMPY_CORE.scalar)
      for module in ("numpy.core", "numpy._core")),
]
# What posereg/Lightning checkpoints contain beyond tensors and plain containers: MultiStepLR's milestones, numpy.
SAFE_GLOBALS: list[Any] = [collections.Counter, collections.defaultdict, *NUMPY_GLOBALS]
TRUST_HINT = "if you trust the file, load it with trust_checkpoints=true"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


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
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
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
        if err.errno in (errno.EACCES, errno.EPERM, errno.ENOENT, errno.EISDIR):
            raise  # unreadable (permissions, ...): not a damaged file
        raise DamagedCheckpointError(f"checkpoint {path} is damaged ({err})") from None
    except Exception as err:  # noqa: BLE001 - garbage bytes make the unpickler fail in many ways
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DamagedCheckpointError(f"checkpoint {path} is damaged ({first})") from None


def _load_safetensors(path: Path, map_location: Any) -> dict[str, Any]:
    """The tensors of a `.safetensors` file (no code can run: the format holds tensors and a JSON header)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device=str(map_location))
    except SafetensorError as err:
        raise DamagedCheckpointError(f"checkpoint {path} is damaged ({err})") from None


def weight_file(path: str | Path) -> Path:
    """`path` as a weight file to write; ConfigError for a folder or a suffix other than WEIGHT_SUFFIXES."""
    path = Path(path)
    if path.is_dir() or path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"{path}: name the weight file to write *{', *'.join(WEIGHT_SUFFIXES)}")
    return path


def save_weights(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write a state dict as `.safetensors` (tensors only) or `.pth` / `.pt` (torch.save)."""
    path = weight_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().clone() for k, v in state.items()}  # own storage each: safetensors refuses shared
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(tensors, path)
    else:
        torch.save(tensors, path)
    return path


def strip_prefixes(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """A state dict whose keys match `own`, removing a wrapper prefix (`model.`, `module.`, ...) when needed."""
    if any(k in own for k in state):
        return state
    for prefix in ("model.", "module.", "net.", "backbone.", "state_dict.", "encoder."):
        renamed = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k in own for k in renamed):
            return renamed
    return state


def tensors_of(checkpoint: Any, setting: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint (`state_dict`, `model` or the dict itself)."""
    state = checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{setting}: not a checkpoint or state dict of tensors")
    return state


def matching_tensors(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of `state` whose name and shape are those of a tensor of `own` (a model's state dict)."""
    return {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}


def load_matching(model: nn.Module, checkpoint: Any, min_fraction: float, setting: str) -> tuple[int, int, int]:
    """Load the tensors of `checkpoint` that match `model` by name and shape; ConfigError when they are fewer
    than `min_fraction` of the model's. Returns (loaded, model tensors, checkpoint tensors skipped)."""
    own = model.state_dict()
    state = strip_prefixes(tensors_of(checkpoint, setting), set(own))
    usable = matching_tensors(state, own)
    fraction = len(usable) / max(len(own), 1)
    if fraction < min_fraction:
        example = next(iter(state), "")
        raise ConfigError(f"{setting}: only {len(usable)} of the model's {len(own)} tensors match by name and shape "
                          f"({fraction:.0%} < {min_fraction:g}; checkpoint keys look like {example!r}): is it a "
                          "checkpoint of another network?")
    model.load_state_dict(usable, strict=False)
    return len(usable), len(own), len(state) - len(usable)
