"""Search spaces by ``model.space`` (:data:`SPACES`, :mod:`~dso_nas.spaces.table`), each a
:class:`~dso_nas.spaces.base.SearchSpace`; this module registers them.

* ``dense`` (alias ``normal``): the M-level x N-op fully connected block of TPAMI §3.1
  (:mod:`dso_nas.spaces.dense`).
* ``cifar_resnet``: GluonCV's CIFAR ResNet v1, a hand-designed reference with nothing to
  search (``searchable = False``), retrained like a derived architecture
  (:mod:`dso_nas.spaces.reference`).
* ``mobile`` (alias ``proxyless``): ProxylessNAS's MBConv backbone, one λ per op of every block
  (TPAMI §3.1 "Mobile Setting"; :mod:`dso_nas.spaces.mobile`).
"""
from __future__ import annotations

from .base import BudgetBlock, HeadCost, HeadFactory, LambdaDeriver, SearchSpace
from .darts import DartsSpace
from .dense import DenseSpace
from .mobile import MobileSpace
from .reference import CifarResNetSpace
from .table import SPACES, get_space

__all__ = ["SPACES", "SearchSpace", "BudgetBlock", "LambdaDeriver", "HeadFactory", "HeadCost", "get_space"]

SPACES.register(DenseSpace.name, DenseSpace(), aliases=DenseSpace.aliases)
SPACES.register(CifarResNetSpace.name, CifarResNetSpace())
SPACES.register(MobileSpace.name, MobileSpace(), aliases=MobileSpace.aliases)
SPACES.register(DartsSpace.name, DartsSpace())
