"""Devices: the ``context`` config key → MXNet contexts, checked, and the op form they want."""
from __future__ import annotations

from typing import List

import mxnet as mx

from ..errors import ConfigError
from ..gpus import check_gpu_context
from ..ops import backend_for_contexts

__all__ = ["contexts", "backend_for", "parse_context", "check_global_batch"]


def parse_context(spec: str) -> List[mx.Context]:
    """``"cpu"``, ``"gpu"`` (= ``gpu:0``), ``"gpu:0,1"`` or ``"cpu:0,1"`` → MXNet contexts
    (several CPU contexts split the batch on one CPU: how multi-device code is tested here)."""
    spec = spec.strip().lower()
    for kind, make in (("cpu", mx.cpu), ("gpu", mx.gpu)):
        if spec == kind:
            return [make(0)]
        if spec.startswith(kind + ":"):
            try:
                out = [make(int(i)) for i in spec[len(kind) + 1:].split(",") if i.strip()]
            except ValueError:
                out = []
            if out and len(set(out)) == len(out):
                return out
    raise ConfigError(f"config key 'context' must be cpu, gpu, gpu:0,1,... or cpu:0,1,..., got {spec!r}")


def check_global_batch(cfg, num_contexts: int, world: int = 1) -> None:
    """``train.batch_size`` and ``retrain.batch_size`` are global batches (TPAMI: "128 on 2
    GPUs"): one line when one does not split evenly over every context (of every worker)."""
    parts = num_contexts * world
    for key in ("train.batch_size", "retrain.batch_size"):
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value % parts:
            raise ConfigError(f"{key}={value} is the global batch and must split evenly over {num_contexts} "
                              f"context(s) x {world} worker(s)")


def contexts(cfg) -> List[mx.Context]:
    """The contexts of ``cfg.context``; GPU ones checked first (:func:`dso_nas.gpus.check_gpu_context`:
    a CUDA build of MXNet, the GPUs there, kernels for their compute capability), so that a
    context that cannot run ends in one line before anything is built."""
    ctxs = parse_context(cfg.context)
    gpus = [c.device_id for c in ctxs if c.device_type == "gpu"]
    if gpus:
        check_gpu_context(cfg.context, gpus)
    return ctxs


def backend_for(cfg) -> str:
    """The op form (:mod:`dso_nas.ops.backends`) for training on ``cfg.context``, decided once."""
    return backend_for_contexts(contexts(cfg))
