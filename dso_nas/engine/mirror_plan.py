"""The segments of mirror training (Chen et al. 2016), chosen on the symbol graph.

The plan
--------
Boundary candidates are *cut* nodes of the data-dependent graph, nodes after which no
earlier feature map is read again (the executor offers the outputs of the layers).
Weight-only sub-graphs (λ slices, the λ-scaled ``1 x 1`` weight) are not counted. Nodes weigh
the elements of their outputs (with input shapes) or 1 (without). For ``k`` segments the
boundaries minimise the largest segment (linear partition, exact DP) and are then moved as
early as that maximum allows, so that the last segment, recorded directly and never
recomputed, is as long as possible. The estimate is ``stored boundaries + largest segment``;
``segments=None`` takes the ``k`` with the smallest estimate: ``k ~ sqrt(n)`` for ``n`` equal
layers; 14 segments for the paper's CIFAR supernet, the first ones one stage-0 search block
each (7.5 GiB of activations estimated down to 0.56 GiB at batch 16).
"""
from __future__ import annotations

import json
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

__all__ = ["DATA", "plan_mirror", "describe_plan"]

log = logging.getLogger(__name__)

DATA = "data"


# ----------------------------------------------------------------------------- graph view


def _is_random(op: str) -> bool:
    return op == "Dropout" or op.startswith(("_random_", "_sample_", "random_", "sample_"))


def _dependent_ops(nodes: list, data: str) -> List[int]:
    """Ids of the op nodes that read ``data`` (directly or not), in topological order."""
    dependent = [False] * len(nodes)
    for i, node in enumerate(nodes):
        if node["op"] == "null":
            dependent[i] = node["name"] == data
        else:
            dependent[i] = any(dependent[e[0]] for e in node["inputs"])
    return [i for i, node in enumerate(nodes) if node["op"] != "null" and dependent[i]]


def _cut_positions(nodes: list, heads: list, order: List[int], data: str) -> List[int]:
    """Positions ``p`` in ``order`` after which no map computed before ``p`` is read again."""
    pos = {nid: p for p, nid in enumerate(order)}
    data_ids = [i for i, node in enumerate(nodes) if node["op"] == "null" and node["name"] == data]
    last = {nid: -1 for nid in order + data_ids}
    for nid in order:
        for entry in nodes[nid]["inputs"]:
            if entry[0] in last:
                last[entry[0]] = max(last[entry[0]], pos[nid])
    for entry in heads:
        if entry[0] in last:
            last[entry[0]] = len(order)
    reach = max((last[i] for i in data_ids), default=-1)
    cuts = []
    for p, nid in enumerate(order):
        if reach <= p:
            cuts.append(p)
        reach = max(reach, last[nid])
    return cuts


def _weights(sym: mx.sym.Symbol, names: List[str],
             shapes: Optional[Dict[str, Tuple[int, ...]]]) -> np.ndarray:
    """Output elements of each named node (or 1 each without ``shapes``)."""
    if not shapes:
        return np.ones(len(names))
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(**shapes)
    if out_shapes is None:
        raise ValueError(f"cannot infer the graph's shapes from {shapes}")
    size: Dict[str, int] = {}
    for name, shape in zip(internals.list_outputs(), out_shapes):
        base = name.rsplit("_output", 1)[0]
        size[base] = size.get(base, 0) + int(np.prod(shape))
    return np.array([float(size.get(name, 0)) for name in names])


# ----------------------------------------------------------------------------- planner


def _partition(cost: np.ndarray) -> List[Tuple[float, List[int]]]:
    """Min-max linear partition for every segment count.

    ``cost[i, j]`` is the cost of the segment from boundary point ``i`` (exclusive) to ``j``
    (inclusive); point 0 is the start, the last point the end, ``inf`` marks ``i >= j``.
    Returns, for ``k = 1, 2, ...`` segments, the largest segment cost and the inner
    points chosen.
    """
    n = cost.shape[0]
    best = cost[0].copy()
    choices: List[np.ndarray] = []
    results = [(float(best[-1]), [])]
    for _ in range(2, n):
        total = np.maximum(best[:, None], cost)
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n)]
        choices.append(arg)
        inner, j = [], n - 1
        for arg_k in reversed(choices):
            j = int(arg_k[j])
            inner.append(j)
        results.append((float(best[-1]), sorted(inner)))
    return results


def _shift_to_front(cost: np.ndarray, inner: List[int], limit: float) -> List[int]:
    """Move each boundary as early as ``limit`` allows, last first (longest last segment)."""
    inner = list(inner)
    later = cost.shape[0] - 1
    for idx in range(len(inner) - 1, -1, -1):
        earlier = inner[idx - 1] if idx > 0 else 0
        for point in range(earlier + 1, inner[idx] + 1):
            if cost[point, later] <= limit:
                inner[idx] = point
                break
        later = inner[idx]
    return inner


def plan_mirror(sym: mx.sym.Symbol, segments: Optional[int] = None, *,
                shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                candidates: Optional[Sequence[str]] = None, data: str = DATA) -> dict:
    """Choose the segments of mirror training (Chen et al. 2016) for a network symbol.

    Parameters
    ----------
    sym : Symbol
        The network, e.g. ``net(mx.sym.var("data"))`` (not modified).
    segments : int, optional
        Number of segments; ``None`` picks the count with the smallest estimated peak. A
        count above what the cut points allow is lowered to that maximum.
    shapes : dict, optional
        Input shapes (``{"data": (B, C, H, W)}``) to weight nodes by their output sizes;
        without it every node weighs 1 (the plain ``sqrt(n)`` rule).
    candidates : sequence of str, optional
        Names of the nodes allowed as boundaries (each must be a cut point; names of nodes
        that do not depend on the input are ignored); default: all cut points.
    data : str
        Name of the input variable.

    Returns
    -------
    dict
        ``nodes`` (data-dependent operations), ``candidates`` (usable boundaries),
        ``segments``, ``boundaries`` (names of the stored segment ends), ``mirrored`` (names
        of the nodes recomputed in the backward pass: all segments but the last),
        ``weighted_by`` (``"elements"`` or ``"nodes"``), ``est_plain`` (all activations) and
        ``est_peak`` (stored boundaries + largest segment), in those units.
    """
    if segments is not None and int(segments) < 1:
        raise ValueError(f"mirror segments must be >= 1, got {segments}")
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    order = _dependent_ops(nodes, data)
    if not order:
        raise ValueError(f"no operation of the symbol reads the input {data!r}")
    n = len(order)
    names = [nodes[i]["name"] for i in order]
    cuts = [p for p in _cut_positions(nodes, graph["heads"], order, data) if p < n - 1]
    if candidates is not None:
        position = {name: p for p, name in enumerate(names)}
        wanted = sorted(position[c] for c in candidates if c in position and position[c] < n - 1)
        stray = sorted(set(wanted) - set(cuts))
        if stray:
            raise ValueError(f"{names[stray[0]]!r} is not a cut point of the graph: maps "
                             f"computed before it are still read after it")
        cuts = wanted
    w = _weights(sym, names, shapes)
    points = [-1] + cuts + [n - 1]
    prefix = np.concatenate([[0.0], np.cumsum(w)])
    ends = np.array([prefix[p + 1] for p in points])
    cost = ends[None, :] - ends[:, None]
    cost[np.tril_indices(len(points))] = np.inf
    options = _partition(cost)
    estimates = [largest + sum(w[points[i]] for i in inner) for largest, inner in options]
    if segments is None:
        k = int(np.argmin(estimates)) + 1
    else:
        k = min(int(segments), len(options))
        if k < segments:
            log.info("mirror: %d segments requested, the graph allows at most %d", segments, k)
    largest, inner = options[k - 1]
    inner = _shift_to_front(cost, inner, largest)
    chosen = [points[i] for i in inner]
    last = chosen[-1] if chosen else -1
    mirrored = [names[p] for p in range(last + 1)]
    random_ops = [names[p] for p in range(last + 1) if _is_random(nodes[order[p]]["op"])]
    if random_ops:
        raise ValueError(f"mirror mode would recompute the random operator {random_ops[0]!r} "
                         f"(a different draw); use fewer segments or move it to the end")
    return {
        "nodes": n,
        "candidates": len(cuts),
        "segments": k,
        "boundaries": [names[p] for p in chosen],
        "mirrored": mirrored,
        "weighted_by": "elements" if shapes else "nodes",
        "est_plain": float(w.sum()),
        "est_peak": float(largest + sum(w[p] for p in chosen)),
    }


def describe_plan(plan: dict) -> str:
    """One log line for a plan."""
    return (f"mirror plan: {plan['segments']} segments over {plan['nodes']} nodes "
            f"({plan['candidates']} candidate boundaries), {len(plan['mirrored'])} nodes "
            f"recomputed, estimated activations {plan['est_peak'] / max(plan['est_plain'], 1):.2f}"
            f" of plain (by {plan['weighted_by']})")
