"""Loss-weight schedules: joint training, or the paper's "heat-map loss first, then integral loss only"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from posereg.errors import ConfigError


@dataclass(frozen=True)
class LossSchedule:
    """Weights per loss term as a function of the epoch.

    `switch_epoch=None`: `weights` always (joint training). Otherwise `before` for epochs < switch_epoch
    (Sun et al.: pre-train the H version with the heat-map loss only) and `after` from then on
    (the integral/joint loss only).
    """

    weights: Mapping[str, float]
    switch_epoch: int | None = None
    before: Mapping[str, float] = field(default_factory=dict)
    after: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.switch_epoch is not None:
            if int(self.switch_epoch) < 0:
                raise ConfigError(f"method.schedule.switch_epoch={self.switch_epoch} must be >= 0 or null")
            if not self.before or not self.after:
                raise ConfigError("method.schedule.switch_epoch is set: give method.schedule.before and .after weights")

    def at(self, epoch: int) -> dict[str, float]:
        """Loss weights in effect during `epoch` (0-based)."""
        if self.switch_epoch is None:
            chosen = self.weights
        else:
            chosen = self.before if epoch < int(self.switch_epoch) else self.after
        return {k: float(v) for k, v in chosen.items()}

    def active(self, epoch: int) -> set[str]:
        """Names of the terms with a non-zero weight during `epoch`."""
        return {k for k, v in self.at(epoch).items() if v != 0.0}

    def terms(self) -> set[str]:
        """Every term that is active in some epoch."""
        tables = (self.before, self.after) if self.switch_epoch is not None else (self.weights,)
        return {k for table in tables for k, v in table.items() if float(v) != 0.0}
