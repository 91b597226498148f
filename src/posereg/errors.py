"""Exceptions with messages meant for the user."""


class ConfigError(ValueError):
    """An impossible or invalid configuration, reported before anything heavy is built."""


class DataError(ValueError):
    """A dataset file or record that cannot be used, named in the message."""
