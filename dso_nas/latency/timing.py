"""The one timing protocol: mean wall-clock forward time of a piece, batch as given.

Constant weights (no random draw), ``static_alloc`` hybridization, ``max(1, warmup)`` untimed
forwards (the first builds the graph), then the mean of ``runs`` timed forwards, each
synchronised. Front-ends: a Gluon block (:func:`wall_clock_latency`); an exported MXNet symbol
is loaded as a ``SymbolBlock`` and goes through the same function
(:mod:`dso_nas.run.export`); an onnxruntime session is timed by :func:`mean_forward_ms`
around ``session.run``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import mxnet as mx
import numpy as np

from ..ops.layers import to_blocked_layout

__all__ = ["wall_clock_latency", "mean_forward_ms"]


def mean_forward_ms(forward: Callable[[], Any], *, runs: int, warmup: int) -> float:
    """``max(1, warmup)`` untimed calls of ``forward``, then the mean of ``max(1, runs)`` timed ones (ms)."""
    for _ in range(max(1, int(warmup))):
        forward()
    times = []
    for _ in range(max(1, int(runs))):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.mean(times))


def wall_clock_latency(net: Any, input_shape: Any, *, runs: int = 5, warmup: int = 2,
                       ctx: Optional[mx.Context] = None, blocked: bool = False) -> float:
    """Mean wall-clock forward time (milliseconds) of an uninitialized network.

    ``net`` is initialized on ``ctx`` (default CPU) with constant weights (no random draw: the
    search's random streams are untouched) and hybridized with ``static_alloc``; the input,
    ``input_shape`` of ones (or a list of shapes, one input each), is usually batch 1.
    ``max(1, warmup)`` untimed forwards (the first one builds the graph), then the mean of
    ``runs`` timed forwards, each synchronised with ``wait_to_read``. ``blocked`` hands the
    inputs over in oneDNN's blocked layout (as maps inside a oneDNN network arrive), not as
    plain NCHW arrays the piece would first convert.
    """
    ctx = ctx or mx.cpu()
    net.initialize(mx.init.Constant(0.01), ctx=ctx)
    net.hybridize(static_alloc=True)
    shapes = [tuple(input_shape)] if isinstance(input_shape[0], int) else [tuple(s) for s in input_shape]
    xs = [mx.nd.ones(shape, ctx=ctx) for shape in shapes]
    if blocked:
        xs = [to_blocked_layout(mx.nd, x, x.shape[1]) for x in xs]
        mx.nd.waitall()

    def forward() -> None:
        out = net(*xs)
        (out[0] if isinstance(out, (list, tuple)) else out).wait_to_read()

    return mean_forward_ms(forward, runs=runs, warmup=warmup)
