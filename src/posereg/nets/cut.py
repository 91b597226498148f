"""The `cut` setting: which network output is the prediction, and which outputs are evaluated.

One grammar for every network: ``null`` or ``last`` (the last output), ``all`` (every output is evaluated,
the last is the prediction), an index (``0``, ``-1``), an output name (``stage2``, ``p4l1``), or one of the
network's aliases (SSP-Net: ``"4,1"`` or ``[4, 1]`` for ``p4l1``). ``auto:<fps>`` (the latest output that
runs at a frame rate) needs a measurement, so the entry point resolves it to a name before the network
is wrapped (`posereg.recipes.common.resolve_auto_cut`); here it is only recognised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from posereg.errors import ConfigError

AUTO_PREFIX = "auto:"


@dataclass(frozen=True)
class Cut:
    """A resolved cut: the prediction output and the evaluated outputs (indices into `output_names`)."""

    index: int
    evaluated: tuple[int, ...]
    num_outputs: int

    @property
    def all(self) -> bool:
        """True when every output is evaluated (`cut=all`)."""
        return len(self.evaluated) > 1

    @property
    def stop(self) -> int | None:
        """The index to pass to `forward(image, cut=...)`: None when every output is needed."""
        return None if self.all or self.index == self.num_outputs - 1 else self.index


def auto_fps(cut: Any) -> float | None:
    """The frame rate of an `auto:<fps>` cut, None for any other cut; ConfigError for a malformed one."""
    if not (isinstance(cut, str) and cut.strip().lower().startswith(AUTO_PREFIX)):
        return None
    text = cut.strip()[len(AUTO_PREFIX) :]
    try:
        fps = float(text)
    except ValueError:
        raise ConfigError(f"cut={cut!r}: expected auto:<frames per second>, e.g. cut=auto:200") from None
    if fps <= 0:
        raise ConfigError(f"cut={cut!r}: the frame rate must be positive")
    return fps


def _alias_key(value: Any) -> str:
    """Normalized spelling for alias lookup: '(4, 1)', '[4,1]', '4_1' -> '4,1'."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = ",".join(str(v) for v in value)
    text = str(value).strip().lower()
    for ch in "()[] ":
        text = text.replace(ch, "")
    return text.replace("_", ",")


def parse_cut(cut: Any, names: Sequence[str], aliases: Mapping[str, str] | None = None) -> Cut:
    """Resolve a `cut` setting against a network's output names (and its aliases)."""
    names = list(names)
    n = len(names)
    last = n - 1
    if cut is None or (isinstance(cut, str) and cut.strip().lower() in ("", "last")):
        return Cut(last, (last,), n)
    if isinstance(cut, str) and cut.strip().lower() == "all":
        return Cut(last, tuple(range(n)), n)
    if auto_fps(cut) is not None:
        raise ConfigError(f"cut={cut!r} must be resolved by measuring the network first (posereg-train and "
                          "posereg-eval do this)")
    if isinstance(cut, bool):
        raise ConfigError(f"cut={cut!r}: expected an output name, an index, 'all' or 'last'")
    text = str(cut).strip() if not isinstance(cut, int) else None
    if isinstance(cut, int) or (text and text.lstrip("-").isdigit()):
        i = int(cut)
        if not -n <= i < n:
            raise ConfigError(f"cut={cut}: index out of range, this network has {n} outputs (0..{last} or -1)")
        i %= n
        return Cut(i, (i,), n)
    if text in names:
        i = names.index(text)
        return Cut(i, (i,), n)
    name = {_alias_key(k): v for k, v in (aliases or {}).items()}.get(_alias_key(cut))
    if name in names:
        i = names.index(name)
        return Cut(i, (i,), n)
    shown = ", ".join(names) if n <= 12 else f"{', '.join(names[:6])}, ..., {names[-1]}"
    raise ConfigError(f"cut={cut!r} is not an output of this network: use one of {shown}, an index, "
                      "'all' or 'last'")
