"""Isolation: run a timing in a fresh (spawned) process and hand its value back.

A process that has read RecordIO keeps the iterator's decoding threads, which slows a timed
forward (:mod:`dso_nas.run.isolated` has the figures); a spawned process starts bare.
"""
from __future__ import annotations

import multiprocessing
from typing import Any, Callable, Sequence

__all__ = ["in_fresh_process"]


def _child(target: Callable[..., Any], args: Sequence[Any], queue: Any) -> None:
    try:
        queue.put(("ok", target(*args)))
    except BaseException as e:  # noqa: BLE001 - handed back to the parent, which raises it
        queue.put(("error", f"{type(e).__name__}: {e}"))


def in_fresh_process(target: Callable[..., Any], args: Sequence[Any], *, timeout: float = 600.0,
                     what: str = "the latency probe process") -> Any:
    """``target(*args)`` run in a spawned process (``target`` a module-level function, so it
    pickles); ``RuntimeError`` naming ``what`` when it raised."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, tuple(args), queue))
    proc.start()
    try:
        status, value = queue.get(timeout=timeout)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        raise RuntimeError(f"{what} failed: {value}")
    return value
