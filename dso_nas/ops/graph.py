"""Params and FLOPs measured from a built block's symbolic graph: the check of the cost model."""
from __future__ import annotations

import ast
import json
import re
from typing import Sequence

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from .backends import REFERENCE
from .cost import Cost

__all__ = ["graph_cost"]


def graph_cost(block: HybridBlock, input_shape: Sequence[int], exclude: str = r".*lambda$") -> Cost:
    """Params and FLOPs of a built block, measured from its symbolic graph.

    The independent check of the analytic model: trainable parameters are counted from
    the shapes of the block's Parameters (``grad_req != 'null'``, names matching ``exclude``
    left out), FLOPs per sample from the inferred shapes of every ``Convolution``,
    ``FullyConnected`` and ``Pooling`` node (same conventions as :mod:`dso_nas.ops.cost`).
    MAC is not measured (returned as 0). The block must be built in the ``"reference"``
    form (one ``Convolution``/``Pooling`` node per layer: the math, whatever computes it);
    a block with an oneDNN-form part is refused rather than silently re-traced.

    Parameters
    ----------
    block : HybridBlock
        An initialized block taking one input, built with ``backend="reference"``.
    input_shape : sequence of int
        ``(batch, C, H, W)`` of the input.
    exclude : str
        Regular expression of Parameter names not to count (the λ by default).
    """
    other = []
    block.apply(lambda b: other.append(b.name) if getattr(b, "backend", REFERENCE) != REFERENCE else None)
    if other:
        raise ValueError(f"graph_cost traces the reference form; {other[0]} was built with another backend")
    sym = block(mx.sym.var("data"))
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=tuple(input_shape))
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())["nodes"]

    def entry_shape(entry):
        node = nodes[entry[0]]
        if node["op"] == "null":
            return shapes[node["name"]]
        return shapes.get(f"{node['name']}_output", shapes.get(f"{node['name']}_output{entry[1]}"))

    flops = 0
    for node_id, node in enumerate(nodes):
        op, attrs = node["op"], node.get("attrs", {})
        if op not in ("Convolution", "FullyConnected", "Pooling"):
            continue
        out = entry_shape([node_id, 0])
        if op == "Convolution":
            flops += int(np.prod(entry_shape(node["inputs"][1]))) * int(np.prod(out[2:]))
        elif op == "FullyConnected":
            flops += int(np.prod(entry_shape(node["inputs"][1])))
        elif attrs.get("global_pool", "False") == "True":
            flops += int(np.prod(entry_shape(node["inputs"][0])[1:]))
        else:
            window = int(np.prod(ast.literal_eval(attrs["kernel"])))
            flops += window * int(np.prod(out[1:]))
    pattern = re.compile(exclude)
    params = sum(int(np.prod(shapes[name])) for name, p in block.collect_params().items()
                 if p.grad_req != "null" and not pattern.match(name))
    return Cost(params, flops, 0)
