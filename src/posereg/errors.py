"""Exceptions with messages meant for the user."""


class ConfigError(ValueError):
    """An impossible or invalid configuration, reported before anything heavy is built."""


class DataError(ValueError):
    """A dataset file or record that cannot be used, named in the message."""


def require_int(value: object, setting: str, minimum: int | None = None) -> int:
    """`value` as an int (bools and non-integral values refused), at least `minimum`; else a ConfigError naming it."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value, ok = int(value), True
    if not ok or (minimum is not None and value < minimum):
        need = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ConfigError(f"{setting}={value!r} must be {need}")
    return int(value)
