"""The run's two trainers: NAG for the weights, APG-NAG for λ (TPAMI §3.3), each aggregating
as the distributed seam says."""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np
from mxnet import gluon

from ..config import CfgNode
from ..engine.distributed import Distributed
from ..search.apgnag import APGNAG, lambda_iterates

__all__ = ["nag_trainer", "lambda_trainer", "lambda_values"]


def nag_trainer(params, lr: float, momentum: float, wd: float, clip: float, dist: Optional[Distributed] = None,
                **extra) -> gluon.Trainer:
    """A NAG Trainer (weights) aggregating as ``dist`` says (default: one process, ``local``);
    ``lr_scheduler`` in ``extra`` replaces the constant rate."""
    opts = {"momentum": momentum, "wd": wd, **extra}
    if "lr_scheduler" not in extra:  # a schedule sets the rate itself (MXNet warns when both are given)
        opts["learning_rate"] = lr
    if clip > 0:
        opts["clip_gradient"] = clip
    return (dist or Distributed()).trainer(params, "nag", opts)


def lambda_trainer(net: Any, cfg: CfgNode, dist: Optional[Distributed] = None) -> gluon.Trainer:
    """The APG-NAG Trainer of the λ parameters (TPAMI §3.3), aggregating as ``dist`` says."""
    s = cfg.search
    opt = APGNAG(learning_rate=s.lambda_lr, momentum=s.lambda_momentum, gamma=s.gamma, clamp=s.clamp,
                 clip_gradient=cfg.train.clip_gradient if cfg.train.clip_gradient > 0 else None)
    return (dist or Distributed()).trainer(net.lambda_params(), opt)


def lambda_values(net: Any, lam_trainer: gluon.Trainer) -> List[np.ndarray]:
    """The λ iterates S(z) (exact zeros) in network order; λ′ itself before any λ step."""
    its = lambda_iterates(lam_trainer, net.lambda_params())
    return [its[p.name] for p in net.lambda_params()]
