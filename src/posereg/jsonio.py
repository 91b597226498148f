"""The one JSON helper: plain values from tensors and numpy, atomic writes, reads that name a damaged file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

MAX_JSON_BYTES = 64 << 20  # status.json is a few hundred bytes, metrics.json at most a few MB


class DamagedFileError(ValueError):
    """A JSON file that exists but cannot be parsed (empty, truncated, garbage)."""


def to_jsonable(value: Any) -> Any:
    """Nested containers of python numbers: tensors and numpy arrays as lists, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu()
    if hasattr(value, "tolist"):  # tensor, numpy array or numpy scalar
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fresh_temp(path: Path) -> tuple[int, str]:
    """A temporary file beside `path` (same filesystem, so the final rename is atomic) with normal permissions."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temporary file in the same directory, fsync'ed and renamed
    over `path` when the block ends. A reader never sees half a file, and a failed write (disk full, killed
    process) leaves the previous file in place and no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = fresh_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def write_json(path: Path, data: Any) -> None:
    """Atomically write `data` (made JSON-able) as indented JSON."""
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(Path(path), text.encode())


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parsed JSON of `path`, None when it does not exist; DamagedFileError naming it when it cannot be parsed
    (not UTF-8, not JSON, nested too deep) or is larger than `max_bytes`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DamagedFileError(f"{path} is damaged ({size / 2**20:.0f} MB, larger than any JSON posereg writes)")
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if isinstance(err, DamagedFileError):
            raise
        detail = str(err).splitlines()[0][:200] if str(err) else ""
        raise DamagedFileError(f"{path} is damaged ({err.__class__.__name__}: {detail})") from None
