"""Instantiate `_target_` config nodes, keeping posereg's one-line user errors intact."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException

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
