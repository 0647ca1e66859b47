"""What a search method owns (``search.method``), behind one class.

A method owns its architecture parameters (how they start, their optimizer, the values it
derives from), how the supernet weighs its ops, the two steps of a search round, and the
derivation. Everything else - the space, the task, the data and its D_w/D_λ split, the
pre-training, the loops, checkpoints and exact resume, the distributed seam, the report - is
the pipeline's, shared by every method.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mxnet import gluon

from ...engine.distributed import Distributed
from ...engine.loops import SearchSteps
from ...errors import ConfigError

__all__ = ["SearchMethod"]


class SearchMethod:
    """Base of the registered search methods (:data:`dso_nas.search.methods.METHODS`)."""

    #: Registered name (``search.method``).
    name = ""
    #: How reports name the method.
    title = ""
    #: Supernet forms the method needs (:attr:`dso_nas.spaces.base.SearchSpace.supernet_forms`).
    needs: Tuple[str, ...] = ("linear",)
    #: How the supernet weighs the ops by the architecture parameters (``build_supernet``).
    weighting = "linear"
    #: The MXNet optimizer of the weights during the search.
    weight_optimizer = "nag"
    #: Sparse methods (DSO-NAS) use the ℓ1 budgets and permanent pruning.
    sparse = False
    #: Whether ``train.mirror`` may be set.
    mirror = True

    # -- config --------------------------------------------------------------------------
    def check_config(self, cfg: Any, space: Any, fitting: Sequence[str]) -> None:
        """One-line ``ConfigError`` where the method does not fit the config (``fitting``: the
        spaces that have every supernet form the method needs)."""
        missing = [form for form in self.needs if form not in space.supernet_forms]
        if missing:
            raise ConfigError(f"search.method={self.name} searches the spaces {list(fitting)}; model.space="
                              f"{space.name} has no {missing[0]!r} supernet")
        if not self.sparse and cfg.search.budget != "none":
            raise ConfigError(f"search.method={self.name} has no budget: set search.budget=none")
        if not self.mirror and cfg.train.mirror:
            raise ConfigError(f"search.method={self.name} has no mirror mode: set train.mirror=false")

    # -- architecture parameters ---------------------------------------------------------
    def init_arch(self, net: Any, cfg: Any) -> None:
        """Set the architecture parameters' starting values (after ``initialize``); default: the space's."""

    def arch_trainer(self, net: Any, cfg: Any, dist: Distributed) -> gluon.Trainer:
        """The Trainer of ``net.lambda_params()`` (the architecture parameters)."""
        raise NotImplementedError

    def arch_values(self, net: Any, trainer: gluon.Trainer) -> List[np.ndarray]:
        """The architecture parameters' current values, one array per parameter."""
        return [p.data().asnumpy() for p in net.lambda_params()]

    # -- the search round ----------------------------------------------------------------
    def steps(self, net: Any, w_trainer: gluon.Trainer, arch_trainer: gluon.Trainer, *, cfg: Any, task: Any,
              ctxs: Sequence[Any], executors: Optional[Sequence] = None, rank: int = 0) -> SearchSteps:
        """The architecture step and the weight step of a round (default: plain steps of ``net``)."""
        return SearchSteps(net, w_trainer, arch_trainer, task=task, ctxs=ctxs, executors=executors,
                           clip_norm=cfg.search.clip_norm)

    # -- derivation ----------------------------------------------------------------------
    def derive(self, space: Any, cfg: Any, values: Sequence[np.ndarray], meta: Dict[str, Any]) -> Any:
        """The architecture the values derive to."""
        raise NotImplementedError

    def support(self, space: Any, cfg: Any, values: Sequence[np.ndarray]) -> List[List[int]]:
        """Per architecture parameter, the flat indices of the entries the derivation keeps now
        (the stop rule and the support flips compare them epoch to epoch)."""
        raise NotImplementedError
