"""``dso-nas evaluate``: the task's test figures of a retraining checkpoint."""
from __future__ import annotations

import os
from typing import Any, Dict, Sequence

import mxnet as mx

from ..config import config_from_dict, merge, parse_overrides, validate
from ..engine import evaluate
from ..runlog import setup_logging
from ..spaces.archfile import architecture_from_dict
from . import checkpoint as ckpt
from .build import build_derived, load_data, parts_of
from .folder import RETRAIN_CKPT
from .payloads import RetrainPayload, load_payload

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Test figures of a retraining checkpoint (``overrides`` may move ``data.root``).

    ``path`` may be the checkpoint file or the run folder holding ``retrain.ckpt``.
    """
    setup_logging(None)
    if os.path.isdir(path):
        path = os.path.join(path, RETRAIN_CKPT)
    state = load_payload(path, RetrainPayload)
    cfg = config_from_dict(state.config)
    merge(cfg, parse_overrides(overrides))
    validate(cfg)
    arch = architecture_from_dict(state.arch)
    parts = parts_of(cfg)
    loaders, shape = load_data(cfg, retrain=True)
    net = build_derived(arch, cfg, state.width_mult, parts)
    net.initialize(ctx=parts.ctxs)
    net.hybridize(static_alloc=True)
    net(mx.nd.zeros((1,) + tuple(shape), ctx=parts.ctxs[0]))
    ckpt.load_net_arrays(net, state.net, source=path)
    split = loaders.eval_split
    test = parts.task.result_fields(evaluate(net, loaders.test, parts.ctxs, task=parts.task), split)
    return {"checkpoint": path, "epoch": state.epoch, **{k: v for k, v in test.items() if k != f"{split}_error"}}
