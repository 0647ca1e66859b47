"""Forward+backward time of each operation's oneDNN and reference form (``dso_nas.ops.backends``).

    python tools/bench_ops.py [--steps 5]

The two poolings and the ``5 x 5`` depthwise convolution (the parts of the paper's ops that
have a oneDNN form of their own) at the three stage shapes of the paper's CIFAR config
(batch 16), median of ``--steps`` runs after two warm-ups, in this process. One JSON line
per (op, shape) with both times and the speed-up.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import List, Optional, Sequence

from toolentry import program, run_tool

SHAPES = ((48, 32), (96, 16), (192, 8))  # (channels, side) of the paper's three stages
BATCH = 16


def run(steps: int) -> List[dict]:
    """Time every (op, shape) in both forms; the JSON records."""
    import mxnet as mx
    import numpy as np
    from mxnet import autograd
    from mxnet.gluon import HybridBlock
    from dso_nas.ops import BACKENDS, DepthwiseConv, pool2d

    class _Pool(HybridBlock):
        def __init__(self, pool_type, channels, backend):
            super().__init__()
            self.args = (pool_type, channels, 3, 1, backend)

        def hybrid_forward(self, F, x):
            return pool2d(F, x, *self.args)

    records = []
    for channels, side in SHAPES:
        shape = (BATCH, channels, side, side)
        x = mx.nd.random.uniform(shape=shape)
        x.attach_grad()
        for op in ("max_pool_3x3", "avg_pool_3x3", "dw_conv_5x5"):
            row = dict(op=op, shape=list(shape))
            for backend in BACKENDS[::-1]:
                block = DepthwiseConv(channels, 5, backend=backend) if op.startswith("dw") else \
                    _Pool(op[:3], channels, backend)
                block.initialize()
                block.hybridize(static_alloc=True, static_shape=True)
                times = []
                for k in range(steps + 2):
                    start = time.perf_counter()
                    with autograd.record():
                        y = block(x)
                    y.backward()
                    mx.nd.waitall()
                    if k >= 2:
                        times.append(time.perf_counter() - start)
                row[f"{backend}_ms"] = round(1e3 * float(np.median(times)), 2)
            row["speedup"] = round(row["reference_ms"] / row["onednn_ms"], 2)
            records.append(row)
    return records


def work(args: argparse.Namespace) -> int:
    """One JSON line per (op, shape)."""
    for record in run(max(args.steps, 1)):
        sys.stdout.write(json.dumps(record) + "\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="bench_ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed runs per (op, shape, form)")
    return run_tool("bench_ops", p, work, argv)


if __name__ == "__main__":
    program(main)
