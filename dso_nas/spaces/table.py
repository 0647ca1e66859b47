"""The table of search spaces by ``model.space`` (:data:`SPACES`), filled by :mod:`dso_nas.spaces`.

It lives apart from the package's ``__init__`` so that the modules the spaces themselves import
(:mod:`~dso_nas.spaces.archfile`) can read it without importing a space: importing any module of
:mod:`dso_nas.spaces` from outside runs the package's ``__init__`` first, which registers every
space, so the table is full whenever one of them is called.
"""
from __future__ import annotations

from ..registry import Registry
from .base import SearchSpace

__all__ = ["SPACES", "get_space"]

SPACES: Registry[SearchSpace] = Registry("search space", "model.space")


def get_space(name: str) -> SearchSpace:
    """The space registered as ``name`` (or an alias); ``ConfigError`` listing the valid names."""
    return SPACES.get(name)
