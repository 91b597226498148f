"""What the entry points share: one red line and exit 2 for bad input, their own `key=value` settings.

Light on purpose (no torch): an entry point checks its arguments with these before it imports its recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from posereg.console import console
from posereg.errors import ConfigError, DataError


def exit_2_on_bad_input(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call fn; a ConfigError or DataError becomes one red line and exit code 2 (bad input, not a crash)."""
    try:
        return fn(*args, **kwargs)
    except (ConfigError, DataError) as err:
        console.print(f"[bold red]error[/bold red]: {err}")
        raise SystemExit(2) from None


def split_own_args(items: list[str], own: dict[str, Any], required: tuple[str, ...] = ("run",)
                   ) -> tuple[dict[str, Any], list[str]]:
    """Separate a command's own `key=value` arguments (defaults in `own`) from config overrides; ConfigError
    when a required one is missing."""
    opts, rest = dict(own), []
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key in opts:
            opts[key] = value
        else:
            rest.append(item)
    for key in required:
        if not opts.get(key):
            raise ConfigError(f"{key}=... is required")
    return opts, rest


def flag(value: str, setting: str) -> bool:
    """true/false (1/0, yes/no) as a bool; ConfigError naming the setting otherwise."""
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"{setting}={value}: use true or false")
