"""Latency of a deployed net timed in a fresh process.

A process that has read RecordIO keeps the iterator's decoding threads: measured here, a micro
net's batch-1 forward took 0.6-0.8 ms in a fresh process, 2.0-3.7 ms with a training iterator
open and 1.3 ms after it was exhausted and collected. :func:`isolated_latency` rebuilds the
network from its architecture and config in a spawned process and times it there.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Sequence

from ..config import CfgNode
from ..latency import wall_clock_latency
from ..latency.isolation import in_fresh_process
from ..spaces.archfile import architecture_from_dict
from .nets import build_derived
from .parts import parts_of

__all__ = ["isolated_latency"]


def _time_deployed(arch_dict: Dict[str, Any], cfg_dict: Dict[str, Any], width: float, backend: str,
                   shape: Sequence[int], runs: int, warmup: int) -> float:
    """The child's job: rebuild the deployed net and time it (the spawned child imports this module)."""

    cfg = CfgNode.from_dict(cfg_dict)
    parts = dataclasses.replace(parts_of(cfg), backend=backend)
    net = build_derived(architecture_from_dict(arch_dict), cfg, width, parts)
    return wall_clock_latency(net, tuple(shape), runs=runs, warmup=warmup, ctx=parts.ctxs[0])


def isolated_latency(arch: Any, cfg: Any, width: float, backend: str, shape: Sequence[int], *, runs: int,
                     warmup: int, timeout: float = 600.0) -> float:
    """Mean batch-1 forward time (ms) of ``arch``'s deployed net under ``cfg`` (already the
    inference config), timed in a spawned process (:func:`dso_nas.latency.isolation.in_fresh_process`)
    on ``cfg``'s first context, one process (``train.kvstore=local``)."""
    d = cfg.to_dict()
    d["train"]["kvstore"] = "local"
    value = in_fresh_process(_time_deployed, (arch.to_dict(), d, width, backend, list(shape), runs, warmup),
                             timeout=timeout, what="the latency probe process")
    return float(value)
