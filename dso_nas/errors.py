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


def native_message(exc: BaseException, limit: int = 200) -> str:
    """The line of a native (C++) MXNet error that says what went wrong.

    ``MXNetError`` text starts with ``Traceback (most recent call last):`` and C++ frames; the
    message is the ``Check failed: ...`` or ``MXNetError: ...`` line (else the last line),
    cut to ``limit`` characters.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Check failed:" in line:
            return line.split("Check failed:", 1)[1].strip()[:limit]
        if line.startswith(("MXNetError:", "Error:")):
            return line.split(":", 1)[1].strip()[:limit]
    useful = [line for line in lines if not line.startswith(("Traceback", "File ", "["))]
    return (useful[-1] if useful else type(exc).__name__)[:limit]
