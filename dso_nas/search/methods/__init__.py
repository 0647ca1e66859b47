"""Search methods as a registry (``search.method``): a new method is one module plus one line.

* ``dso`` (:mod:`.dso`) - DSO-NAS: λ, ℓ1 by APG-NAG, the budgets and pruning (every space);
* ``nasp`` (:mod:`.nasp`) - NASP's proximal iterations, one op per edge (the DARTS space);
* ``darts`` (:mod:`.darts`) - first-order DARTS (the DARTS space).

A method fits a space when the space has every supernet form it needs
(:attr:`~dso_nas.search.methods.base.SearchMethod.needs`); ``check_method`` refuses the rest
in one line naming the spaces that fit.
"""
from __future__ import annotations

from typing import Any

from ...registry import Registry
from .base import SearchMethod
from .darts import DartsMethod
from .dso import DsoMethod
from .nasp import NaspMethod

__all__ = ["METHODS", "SearchMethod", "get_method", "check_method"]

METHODS: Registry[SearchMethod] = Registry("search method", "search.method")
METHODS.register("dso", DsoMethod())
METHODS.register("nasp", NaspMethod())
METHODS.register("darts", DartsMethod())


def get_method(name: str) -> SearchMethod:
    """The registered method ``name`` (``ConfigError`` listing the valid names otherwise)."""
    return METHODS.get(name)


def check_method(cfg: Any, spaces: Any) -> None:
    """The method of ``cfg`` checks the config against its space (``spaces``: the space registry)."""
    method = get_method(cfg.search.method)
    fitting = [name for name in spaces.names() if spaces.get(name).searchable and all(f in spaces.get(name).supernet_forms for f in method.needs)]
    method.check_config(cfg, spaces.get(cfg.model.space), fitting)
