"""Devices: the ``context`` config key → MXNet contexts, and the op form they want."""
from __future__ import annotations

from typing import List

import mxnet as mx

from ..errors import ConfigError
from ..ops import backend_for_contexts

__all__ = ["contexts", "backend_for", "parse_context"]


def parse_context(spec: str) -> List[mx.Context]:
    """``"cpu"``, ``"gpu"`` or ``"gpu:0,1"`` → MXNet contexts."""
    spec = spec.strip().lower()
    if spec == "cpu":
        return [mx.cpu()]
    if spec.startswith("gpu"):
        ids = spec[4:] if spec.startswith("gpu:") else "0"
        try:
            out = [mx.gpu(int(i)) for i in ids.split(",") if i.strip()]
        except ValueError:
            out = []
        if out and (spec == "gpu" or spec.startswith("gpu:")):
            return out
    raise ConfigError(f"config key 'context' must be cpu, gpu or gpu:0,1,..., got {spec!r}")


def contexts(cfg) -> List[mx.Context]:
    """The contexts of ``cfg.context``."""
    return parse_context(cfg.context)


def backend_for(cfg) -> str:
    """The op form (:mod:`dso_nas.ops.backends`) for training on ``cfg.context``, decided once."""
    return backend_for_contexts(contexts(cfg))
