"""The parts a run's config selects, built once: its space, task, contexts, op form and
distributed seam.

The registries decide: ``model.space`` gives the network (:mod:`dso_nas.spaces`), ``task.name``
its head, loss and metric (:mod:`dso_nas.tasks`); the op form is decided once from ``context``
(:func:`dso_nas.engine.devices.backend_for`) and passed to every builder; the distributed seam
(:func:`dso_nas.engine.distributed.from_config`) says once who writes the run folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import mxnet as mx

from ..config import CfgNode
from ..engine.devices import backend_for, check_global_batch, contexts
from ..engine.distributed import Distributed, from_config
from ..errors import ConfigError
from ..ops import REFERENCE
from ..spaces import SearchSpace, get_space
from ..tasks import Task, get_task

__all__ = ["Parts", "parts_of"]


@dataclass(frozen=True)
class Parts:
    """What a config selects: its space, task, contexts, op form and distributed seam."""

    space: SearchSpace
    task: Task
    ctxs: List[mx.Context]
    backend: str
    dist: Distributed


def parts_of(cfg: CfgNode) -> Parts:
    """The registered parts and devices of ``cfg`` (the op form decided here, once)."""
    ctxs, dist = contexts(cfg), from_config(cfg)
    check_global_batch(cfg, len(ctxs), dist.world)
    if dist.store is not None and cfg.train.mirror:
        raise ConfigError(f"train.mirror is one process only: it cannot run with train.kvstore={dist.kvstore}")
    backend = REFERENCE if dist.store is not None else backend_for(cfg)  # every worker computes the same forms
    return Parts(get_space(cfg.model.space), get_task(cfg.task.name), ctxs, backend, dist)
