"""Exceptions that end a command with one clear line instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: a path, a config key, a file. The CLI prints it as one line."""


class ConfigError(UserError):
    """An unknown config key, a wrongly typed value, a malformed override or YAML file."""


class DatasetNotFoundError(UserError):
    """The dataset files are not where the config says they are."""


class ArchitectureError(UserError):
    """A malformed or inconsistent architecture file."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or does not match the config."""
