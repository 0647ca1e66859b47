"""Latency of a deployed net timed in a fresh process.

A process that has read RecordIO keeps the iterator's decoding threads: measured here, a micro
net's batch-1 forward took 0.6-0.8 ms in a fresh process, 2.0-3.7 ms with a training iterator
open and 1.3 ms after it was exhausted and collected. :func:`isolated_latency` rebuilds the
network from its architecture and config in a spawned process and times it there.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
from typing import Any, Dict, Sequence

__all__ = ["isolated_latency"]


def _child(arch_dict: Dict[str, Any], cfg_dict: Dict[str, Any], width: float, backend: str,
           shape: Sequence[int], runs: int, warmup: int, queue: Any) -> None:
    try:  # imported in the child: a spawned process starts bare
        from ..config import CfgNode  # noqa: PLC0415
        from ..search.latency import wall_clock_latency
        from ..spaces.archfile import architecture_from_dict
        from .nets import build_derived
        from .parts import parts_of

        cfg = CfgNode.from_dict(cfg_dict)
        parts = dataclasses.replace(parts_of(cfg), backend=backend)
        net = build_derived(architecture_from_dict(arch_dict), cfg, width, parts)
        queue.put(("ok", wall_clock_latency(net, tuple(shape), runs=runs, warmup=warmup, ctx=parts.ctxs[0])))
    except BaseException as e:  # noqa: BLE001 - handed back to the parent, which raises it
        queue.put(("error", f"{type(e).__name__}: {e}"))


def isolated_latency(arch: Any, cfg: Any, width: float, backend: str, shape: Sequence[int], *, runs: int,
                     warmup: int, timeout: float = 600.0) -> float:
    """Mean batch-1 forward time (ms) of ``arch``'s deployed net under ``cfg`` (already the
    inference config), timed in a spawned process on ``cfg``'s first context, one process
    (``train.kvstore=local``)."""
    d = cfg.to_dict()
    d["train"]["kvstore"] = "local"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(arch.to_dict(), d, width, backend, list(shape), runs, warmup, queue))
    proc.start()
    try:
        status, value = queue.get(timeout=timeout)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        raise RuntimeError(f"the latency probe process failed: {value}")
    return float(value)
