"""Instantiate `_target_` config nodes, keeping posereg's one-line user errors intact."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from posereg.errors import ConfigError, DataError


def instantiate(node: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, re-raising a ConfigError / DataError from the target as itself.

    Hydra wraps every exception of a target in "Error in call to target ..."; a user error is re-raised
    as the original one-line message (exit code 2 at the entry points), anything else as Hydra gives it.
    """
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ConfigError | DataError):
            raise cause from None
        raise


def instantiate_group(node: DictConfig | None) -> list[Any]:
    """Build every `_target_` entry of a config group mapping (callbacks, logger); null entries and
    factories that return None (a feature left off) are dropped."""
    built = []
    for value in (node or {}).values():
        if value is not None and "_target_" in value:
            obj = instantiate(value)
            if obj is not None:
                built.append(obj)
    return built
