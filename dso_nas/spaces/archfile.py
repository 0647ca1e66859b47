"""The architecture file: a small versioned YAML that names its space and round-trips.

Every space writes ``version`` and ``space`` first; the rest is the space's own
(:meth:`SearchSpace.arch_from_dict`). :func:`load_architecture` reads the ``space`` key and
hands the mapping to that space (looked up in :data:`~dso_nas.spaces.table.SPACES`), so a
derived network is always rebuilt from this file.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, Set

import yaml

from ..errors import ArchitectureError, ConfigError
from ..paths import read_yaml
from .table import SPACES

__all__ = ["architecture_yaml", "save_architecture", "load_architecture", "architecture_from_dict",
           "architecture_space", "space_override", "check_file_keys"]


class _FlowDict(dict):
    """A mapping written on one line in the architecture file."""


class _FlowList(list):
    """A list written on one line in the architecture file."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _FlowDict, lambda dumper, v: dumper.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(
    _FlowList, lambda dumper, v: dumper.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _flow(value: Any, depth: int = 0) -> Any:
    """One line per entry: a mapping two lists deep (an op entry of a dense cell), or a list of
    lists of scalars (a DARTS node's ``[op, input]`` entries). ``depth``: enclosing lists."""
    if isinstance(value, dict):
        items = {k: _flow(v) for k, v in value.items()}
        return _FlowDict(items) if depth >= 2 else items
    if isinstance(value, list):
        if value and all(isinstance(v, list) and not any(isinstance(x, (list, dict)) for x in v) for v in value):
            return _FlowList(value)
        return [_flow(v, depth + 1) for v in value]
    return value


def architecture_yaml(arch: Any) -> str:
    """The architecture file's text (``arch.to_dict()``, an op entry or a node per line)."""
    d = {k: _flow(v) for k, v in arch.to_dict().items()}
    return yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120,
                     allow_unicode=True)


def save_architecture(arch: Any, path: str) -> None:
    """Write the architecture file atomically (temporary file + ``os.replace``)."""
    text = architecture_yaml(arch)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".arch-", suffix=".yaml.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def architecture_from_dict(data: Any) -> Any:
    """Build an architecture of the space its ``space`` key names (``ArchitectureError``)."""
    if not isinstance(data, dict):
        raise ArchitectureError(f"an architecture must be a mapping of keys, got {type(data).__name__}")
    try:
        space = SPACES.get(data.get("space", ""))
    except ConfigError:
        raise ArchitectureError(f"architecture key 'space' must be one of {list(SPACES.choices())}, "
                                f"got {data.get('space')!r}") from None
    return space.arch_from_dict(data)


def load_architecture(path: str) -> Any:
    """Read and validate an architecture file.

    Raises
    ------
    ArchitectureError
        When the file is missing, unreadable, not YAML, or describes no valid architecture;
        the one-line message names the file and the problem.
    """
    data = read_yaml(path, "architecture file", ArchitectureError)
    try:
        return architecture_from_dict(data)
    except ArchitectureError as e:
        raise ArchitectureError(f"architecture file {path}: {e}") from None


def architecture_space(arch: Any) -> Any:
    """The registered space an architecture (from :func:`load_architecture`) belongs to."""
    return SPACES.get(arch.to_dict()["space"])


def space_override(arch: Any) -> str:
    """The ``model.space=NAME`` override of an architecture's own space: a command given an
    architecture file puts it before the user's overrides (the file names its space)."""
    return f"model.space={arch.to_dict()['space']}"


def check_file_keys(data: Dict[str, Any], space: str, version: int, keys: Set[str]) -> None:
    """``ArchitectureError`` on a key outside ``keys`` or a ``version`` other than ``version``."""
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ArchitectureError(f"unknown key(s) {unknown} in a {space} architecture; valid: {sorted(keys)}")
    if data.get("version") != version:
        raise ArchitectureError(f"{space} architecture version must be {version}, got {data.get('version')!r}")
