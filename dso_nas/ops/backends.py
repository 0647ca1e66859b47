"""Op forms per device: how the same operations are computed, chosen once from the contexts.

Every operation computes the same function with the same Parameters in either form, so a
checkpoint moves freely between them:

* ``"onednn"``: rearrangements for oneDNN (MKLDNN) on CPU, where the plain forms were the
  bottleneck of the search step: fused BN-ReLU (``contrib.BatchNormWithReLU``), poolings
  read through a blocked-layout identity convolution, wide depthwise convolutions split
  into ``k x 3`` columns, the λ sums as a ``1 x 1`` convolution
  (:mod:`dso_nas.ops.layers`, :mod:`dso_nas.spaces.dense.block`);
* ``"reference"``: one ``F.Convolution`` / ``F.Pooling`` / ``F.BatchNorm`` + ``F.relu`` each,
  the form for GPUs, for several contexts and for tracing the graph
  (:func:`dso_nas.ops.graph.graph_cost`).

The form is an explicit constructor argument of every block (``backend=``), decided once by
:func:`backend_for_contexts` where a network is built (:mod:`dso_nas.run.parts`) and passed
down; there is no process-wide default.
"""
from __future__ import annotations

from typing import Sequence

import mxnet as mx

from ..errors import ConfigError

__all__ = ["BACKENDS", "ONEDNN", "REFERENCE", "check_backend", "backend_for_contexts"]

ONEDNN, REFERENCE = "onednn", "reference"
BACKENDS = (ONEDNN, REFERENCE)


def check_backend(backend: str) -> str:
    """``backend`` itself; ``ConfigError`` when it is not one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown op backend {backend!r}; valid: {', '.join(BACKENDS)}")
    return backend


def backend_for_contexts(ctxs: Sequence[mx.Context]) -> str:
    """The form to build a network in for training on ``ctxs``.

    ``"onednn"`` for one CPU context of a build with oneDNN (MKLDNN): its forms are
    rearrangements for oneDNN, and ``contrib.BatchNormWithReLU`` has no GPU kernel.
    ``"reference"`` otherwise: GPUs, a CPU build without oneDNN, and several CPU contexts,
    where the fused BN-ReLU of the contexts, running at the same time, now and then moved
    one context's BN running mean wrongly (3 runs in 8 of a two-context test).
    """
    ctxs = list(ctxs)
    one_cpu = len(ctxs) == 1 and ctxs[0].device_type == "cpu"
    return ONEDNN if one_cpu and mx.runtime.Features().is_enabled("MKLDNN") else REFERENCE
