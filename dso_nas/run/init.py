"""A network's first weights: seeded initialisation, and the transfer of a checkpoint's
weights (``train.init``)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..config import CfgNode
from ..errors import CheckpointError, UserError
from . import checkpoint as ckpt

__all__ = ["initialize", "read_init", "init_width", "load_init"]


def initialize(net: gluon.Block, ctxs: Sequence[mx.Context], seed: int) -> None:
    """Seeded Xavier initialisation (release: gaussian, fan-in, magnitude 2); no weight decay
    on BN parameters and biases."""
    mx.random.seed(seed)
    np.random.seed(seed)
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=list(ctxs))
    net.collect_params(".*gamma|.*beta|.*bias").setattr("wd_mult", 0.0)


def read_init(cfg: CfgNode) -> Optional[Dict[str, Any]]:
    """The checkpoint ``train.init`` names (a search or retraining one), or ``None`` when unset."""
    if not cfg.train.init:
        return None
    init = ckpt.load_checkpoint(cfg.train.init)
    if not isinstance(init.get("net"), dict):
        raise CheckpointError(f"train.init={cfg.train.init} holds no network weights")
    return init


def init_width(init: Optional[Dict[str, Any]]) -> Optional[float]:
    """The width multiplier of a retraining checkpoint (its weights fit only that width), else ``None``."""
    width = (init or {}).get("width_mult")
    return float(width) if width is not None else None


def load_init(net: gluon.Block, init: Dict[str, Any], source: str) -> Tuple[int, int]:
    """Copy the weights of checkpoint ``init`` into ``net``'s parameters of the same structural
    name and shape (``train.init``: an ImageNet-trained backbone under a segmentation head,
    TPAMI §4.4); the others keep their initialisation.

    Returns ``(loaded, total)``; ``UserError`` naming ``source`` when nothing matches.
    """
    arrays = init["net"]
    params = net._collect_params_with_prefix()  # noqa: SLF001 - the structural names checkpoints use
    loaded = 0
    for key, param in params.items():
        value = arrays.get(key)
        if value is not None and tuple(value.shape) == tuple(param.shape):
            param.set_data(mx.nd.array(value, dtype=param.dtype))
            loaded += 1
    if loaded == 0:
        raise UserError(f"train.init={source}: none of its {len(arrays)} arrays matches a parameter of this network "
                        f"(same name and shape)")
    return loaded, len(params)
