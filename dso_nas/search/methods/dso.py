"""DSO-NAS (TPAMI 2020): λ scale every op, ℓ1 on λ by APG-NAG, keep what is non-zero."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np
from mxnet import gluon

from ...engine.distributed import Distributed
from ..apgnag import APGNAG, lambda_iterates
from .base import SearchMethod

__all__ = ["DsoMethod"]


class DsoMethod(SearchMethod):
    """DSO-NAS: the λ of every space, APG-NAG with the ℓ1 weight γ and the budgets (§3.3-3.4)."""

    name = "dso"
    title = "DSO-NAS"
    sparse = True

    def arch_trainer(self, net: Any, cfg: Any, dist: Distributed) -> gluon.Trainer:
        """APG-NAG on λ (TPAMI §3.3)."""
        s = cfg.search
        opt = APGNAG(learning_rate=s.lambda_lr, momentum=s.lambda_momentum, gamma=s.gamma, clamp=s.clamp,
                     clip_gradient=cfg.train.clip_gradient if cfg.train.clip_gradient > 0 else None)
        return dist.trainer(net.lambda_params(), opt)

    def arch_values(self, net: Any, trainer: gluon.Trainer) -> List[np.ndarray]:
        """The proximal iterates S(z) (exact zeros); λ′ itself before any λ step."""
        its = lambda_iterates(trainer, net.lambda_params())
        return [its[p.name] for p in net.lambda_params()]

    def derive(self, space: Any, cfg: Any, values: Sequence[np.ndarray], meta: Dict[str, Any]) -> Any:
        """The space's own derivation (what is non-zero)."""
        return space.derive(cfg, values, meta)

    def support(self, space: Any, cfg: Any, values: Sequence[np.ndarray]) -> List[List[int]]:
        """The non-zero λ."""
        return [np.flatnonzero(v).tolist() for v in values]
