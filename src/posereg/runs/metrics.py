"""`metrics.json`: the one schema every writer of a run directory fills (training, hypotheses, bench cells).

Metric names are `{stage}/{metric}` (docs/architecture.md §4). `final` and `best` are the last and the best
validation rows (by `monitor`), `test` the test metrics of the best checkpoint; `setup` says what was trained
(method, data, joint set, backbone, input, batch, epochs, steps, seed, device, precision), `complexity` the
network's parameters and GMACs, `extras` what is not a scalar (curves, per part, per action, per joint).
A writer leaves empty what it does not have (a bench cell has no monitor, no epochs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from posereg.jsonio import DamagedFileError, to_jsonable

_SECTIONS = ("final", "best", "test", "setup", "complexity", "extras")  # the mappings (never null)
_SCALAR_SECTIONS = ("final", "best", "test")  # metric name -> a number (null: not finite)
_TYPES = {"monitor": (str,), "monitor_mode": (str,), "best_epoch": (int,), "epochs": (int,), "global_step": (int,)}


@dataclass
class RunMetrics:
    """The content of a run's metrics.json."""

    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    monitor: str | None = None
    monitor_mode: str | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    global_step: int | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    complexity: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to metrics.json (tensors as lists, non-finite floats as null)."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str | Path = "metrics.json") -> RunMetrics:
        """The record of a parsed metrics.json (keys of other writers' versions are left out); DamagedFileError
        naming `path` when a field has another type than posereg writes."""
        values = {f.name: data.get(f.name) for f in fields(cls) if f.name in data}
        for name in _SECTIONS:
            values[name] = values.get(name) or {}
            if not isinstance(values[name], dict):
                raise DamagedFileError(f"{path} is damaged ({name} is a {type(values[name]).__name__}, not an object)")
        for name in _SCALAR_SECTIONS:
            for key, value in values[name].items():
                if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                    raise DamagedFileError(f"{path} is damaged ({name}.{key}={str(value)[:40]!r} is not a number)")
        for name, types in _TYPES.items():
            value = values.get(name)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                raise DamagedFileError(f"{path} is damaged ({name}={str(value)[:40]!r} is not a {types[0].__name__})")
        return cls(**values)
