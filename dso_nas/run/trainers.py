"""The run's trainers: NAG (or the search method's optimizer) for the weights, the search
method's for λ / α (APG-NAG for DSO-NAS, TPAMI §3.3), each aggregating as the distributed
seam says."""
from __future__ import annotations

from typing import Any, Optional

from mxnet import gluon

from ..config import CfgNode
from ..engine.distributed import Distributed
from ..search.methods import get_method

__all__ = ["nag_trainer", "search_weight_trainer", "lambda_trainer"]


def nag_trainer(params, lr: float, momentum: float, wd: float, clip: float, dist: Optional[Distributed] = None,
                optimizer: str = "nag", **extra) -> gluon.Trainer:
    """A NAG Trainer (weights) aggregating as ``dist`` says (default: one process, ``local``);
    ``lr_scheduler`` in ``extra`` replaces the constant rate; ``optimizer="sgd"`` is heavy-ball
    momentum instead of Nesterov's."""
    opts = {"momentum": momentum, "wd": wd, **extra}
    if "lr_scheduler" not in extra:  # a schedule sets the rate itself (MXNet warns when both are given)
        opts["learning_rate"] = lr
    if clip > 0:
        opts["clip_gradient"] = clip
    return (dist or Distributed()).trainer(params, optimizer, opts)


def search_weight_trainer(params, cfg: CfgNode, dist: Optional[Distributed] = None) -> gluon.Trainer:
    """The weights' Trainer during the search: the method's optimizer (NAG for DSO-NAS,
    heavy-ball SGD for NASP and DARTS) at ``search.lr`` (the epoch's rate is set by the run)."""
    s = cfg.search
    return nag_trainer(params, s.lr, s.momentum, s.wd, cfg.train.clip_gradient, dist,
                       optimizer=get_method(s.method).weight_optimizer)


def lambda_trainer(net: Any, cfg: CfgNode, dist: Optional[Distributed] = None) -> gluon.Trainer:
    """The Trainer of the architecture parameters (λ, α) of the config's search method: APG-NAG
    for DSO-NAS (TPAMI §3.3), Adam for NASP and DARTS."""
    return get_method(cfg.search.method).arch_trainer(net, cfg, dist or Distributed())
