"""Name → entry registries: the one seam per axis of variation (spaces, tasks, datasets, ops, budgets, schedules, commands).

A registry maps the names a config may use to the objects that implement them. A new entry
is one module plus one ``REGISTRY.register(name, entry)`` line; config choices, error
messages and the registry-driven tests all read the registry, so nothing else changes::

    SPACES.register("dense", DenseSpace(), aliases=("normal",))
    space = SPACES.get(cfg.model.space)
"""
from __future__ import annotations

from typing import Dict, Generic, Iterator, Optional, Sequence, Tuple, TypeVar

from .errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Named entries of one kind, in registration order, with optional aliases.

    Parameters
    ----------
    kind : str
        What an entry is ("search space", "task", ...), for error messages.
    key : str
        The config key whose value names an entry (``"model.space"``), for error messages.
    """

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self._entries: Dict[str, T] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, name: str, entry: Optional[T] = None, *, aliases: Sequence[str] = ()):
        """Add ``entry`` under ``name`` (and ``aliases``); usable as a decorator without ``entry``."""
        def add(obj: T) -> T:
            for label in (name, *aliases):
                if label in self._entries or label in self._aliases:
                    raise ValueError(f"{self.kind} {label!r} is registered twice")
            self._entries[name] = obj
            self._aliases.update({alias: name for alias in aliases})
            return obj
        return add if entry is None else add(entry)

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` or of the entry it is an alias of."""
        name = self._aliases.get(name, name)
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r} (config key '{self.key}'); "
                              f"valid: {', '.join(self.choices())}")
        return name

    def get(self, name: str) -> T:
        """The entry named ``name`` (an alias works too); ``ConfigError`` listing the valid names."""
        return self._entries[self.canonical(name)]

    def names(self) -> Tuple[str, ...]:
        """Registered names, in registration order (aliases left out)."""
        return tuple(self._entries)

    def choices(self) -> Tuple[str, ...]:
        """Every name a config may use: registered names, then aliases."""
        return tuple(self._entries) + tuple(self._aliases)

    def items(self) -> Iterator[Tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

