"""Search spaces by ``model.space`` (:data:`SPACES`), each a :class:`~dso_nas.spaces.base.SearchSpace`.

* ``dense`` (alias ``normal``): the M-level x N-op fully connected block of TPAMI §3.1
  (:mod:`dso_nas.spaces.dense`).
* ``cifar_resnet``: GluonCV's CIFAR ResNet v1, a hand-designed reference with nothing to
  search (``searchable = False``), retrained like a derived architecture
  (:mod:`dso_nas.spaces.reference`).

* ``mobile`` (alias ``proxyless``): ProxylessNAS's MBConv backbone, one λ per op of every block
  (TPAMI §3.1 "Mobile Setting"; :mod:`dso_nas.spaces.mobile`).
"""
from __future__ import annotations

from ..registry import Registry
from .base import BudgetBlock, HeadCost, HeadFactory, LambdaDeriver, SearchSpace

__all__ = ["SPACES", "SearchSpace", "BudgetBlock", "LambdaDeriver", "HeadFactory", "HeadCost", "get_space"]

SPACES: Registry[SearchSpace] = Registry("search space", "model.space")

from .dense import DenseSpace  # noqa: E402 - registers after SPACES exists

SPACES.register(DenseSpace.name, DenseSpace(), aliases=DenseSpace.aliases)
from .reference import CifarResNetSpace  # noqa: E402

SPACES.register(CifarResNetSpace.name, CifarResNetSpace())
from .mobile import MobileSpace  # noqa: E402

SPACES.register(MobileSpace.name, MobileSpace(), aliases=MobileSpace.aliases)


def get_space(name: str) -> SearchSpace:
    """The space registered as ``name`` (or an alias); ``ConfigError`` listing the valid names."""
    return SPACES.get(name)
