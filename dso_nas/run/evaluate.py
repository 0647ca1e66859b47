"""``dso-nas evaluate``: the task's test figures of a retraining checkpoint."""
from __future__ import annotations

import os
from typing import Any, Dict, Sequence

import mxnet as mx

from ..config import config_from_dict, merge, parse_overrides, validate
from ..engine import evaluate
from ..errors import ConfigError
from ..runlog import setup_logging
from ..spaces.archfile import architecture_from_dict
from . import checkpoint as ckpt
from .folder import RETRAIN_CKPT
from .loaders import load_data
from .nets import build_derived
from .parts import parts_of
from .payloads import RetrainPayload, load_payload

__all__ = ["EVALUATE_KEYS", "evaluate_checkpoint"]

#: The keys ``dso-nas evaluate`` takes as overrides: where the data lies and how it is read,
#: devices and batch sizes. Everything else (the network, the dataset, its split) is the
#: checkpoint's own: an override of it would be ignored or would not fit the weights.
EVALUATE_KEYS = ("data.root", "data.cache", "data.threads", "data.test_limit", "context", "progress",
                 "train.eval_batch_size", "train.batch_size", "retrain.batch_size")


def _check_overrides(overrides: Sequence[str]) -> Dict[str, Any]:
    """The parsed overrides; ``ConfigError`` naming the first key evaluate does not take."""
    parsed = parse_overrides(overrides)
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in EVALUATE_KEYS:
            raise ConfigError(f"evaluate reads the network and dataset from the checkpoint: {key} cannot be "
                              f"overridden (only {', '.join(EVALUATE_KEYS)})")
    return parsed


def evaluate_checkpoint(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Test figures of a retraining checkpoint; ``overrides`` may set only :data:`EVALUATE_KEYS`
    (``data.root`` where the dataset lies now, ``context``, batch sizes).

    ``path`` may be the checkpoint file or the run folder holding ``retrain.ckpt``.
    """
    setup_logging(None)
    parsed = _check_overrides(overrides)
    if os.path.isdir(path):
        path = os.path.join(path, RETRAIN_CKPT)
    state = load_payload(path, RetrainPayload)
    cfg = config_from_dict(state.config)
    merge(cfg, parsed)
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
