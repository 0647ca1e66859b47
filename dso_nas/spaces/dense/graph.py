"""The graph of one search block, independent of any framework.

A block has ``levels`` (M) levels of ``n_ops`` (N) operations. Nodes are
``(level, op)`` pairs: ``(0, 0)`` is the block input, ``(i, j)`` for ``1 <= i <= M``
and ``0 <= j < N`` is operation ``j`` of level ``i`` (1-based levels as in the paper,
0-based op index into the op list), and ``(M + 1, 0)`` is the block output.

Every edge that carries a scaling factor λ is listed by :func:`block_edges` in the
order the flat λ vector of a block stores them (TPAMI Eq. 8, ICLR Eqs. 3-4):

1. for each level ``i = 2..M``, for each consumer op ``j = 0..N-1``: the edge from the
   block input, then from every op ``(m, n)`` with ``m < i`` in row-major order;
   (level-1 ops read the block input directly, without λ);
2. then the M·N edges from every op ``(m, n)`` to the block output, row-major.

So level ``i`` occupies an ``N x (1 + (i-1)N)`` row-major matrix, followed by the
output vector. The count is ``(M² - M)N²/2 + 2MN - N`` (124 for M = N = 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Set, Tuple

import numpy as np

Node = Tuple[int, int]
Edge = Tuple[Node, Node]

INPUT: Node = (0, 0)


def output_node(levels: int) -> Node:
    """The block-output node ``(M + 1, 0)``."""
    return (levels + 1, 0)


def op_nodes(levels: int, n_ops: int) -> List[Node]:
    """All operation nodes ``(i, j)``, level-major."""
    return [(i, j) for i in range(1, levels + 1) for j in range(n_ops)]


def level_sources(level: int, n_ops: int) -> List[Node]:
    """The nodes a level-``level`` op may read (block input first, then earlier ops)."""
    return [INPUT] + [(m, n) for m in range(1, level) for n in range(n_ops)]


def block_edges(levels: int, n_ops: int) -> List[Edge]:
    """Every λ-carrying edge ``(src, dst)`` of a block, in flat λ order."""
    edges: List[Edge] = []
    for i in range(2, levels + 1):
        for j in range(n_ops):
            edges.extend((src, (i, j)) for src in level_sources(i, n_ops))
    out = output_node(levels)
    edges.extend((node, out) for node in op_nodes(levels, n_ops))
    return edges


def level_slice(levels: int, n_ops: int, level: int) -> Tuple[int, int]:
    """``(start, stop)`` of level ``level``'s ``N x (1 + (level-1)N)`` λ matrix in the flat vector.

    ``level = levels + 1`` gives the output λ vector.
    """
    if not 2 <= level <= levels + 1:
        raise ValueError(f"level must be in [2, {levels + 1}], got {level}")
    start = sum(n_ops * (1 + (m - 1) * n_ops) for m in range(2, level))
    size = n_ops * (1 + (level - 1) * n_ops) if level <= levels else levels * n_ops
    return start, start + size


def num_lambda(levels: int, n_ops: int) -> int:
    """Scaling factors per block: ``(M² - M)N²/2 + 2MN - N``."""
    return (levels * levels - levels) * n_ops * n_ops // 2 + 2 * levels * n_ops - n_ops


def node_name(node: Node, levels: int) -> str:
    """Human/YAML name of a node: ``"in"``, ``"out"`` or ``"<level>.<op index>"``."""
    if node == INPUT:
        return "in"
    if node == output_node(levels):
        return "out"
    return f"{node[0]}.{node[1]}"


def parse_node(name: str, levels: int) -> Node:
    """Inverse of :func:`node_name`; raises ``ValueError`` on a malformed name."""
    if name == "in":
        return INPUT
    if name == "out":
        return output_node(levels)
    level, _, op = str(name).partition(".")
    node = (int(level), int(op))
    if not 1 <= node[0] <= levels or node[1] < 0:
        raise ValueError(f"node {name!r} is outside a block of {levels} levels")
    return node


# ----------------------------------------------------------------------------- the dead-op rule (the only one)


def _check_mask(mask, levels: int, n_ops: int) -> np.ndarray:
    mask = np.asarray(mask).reshape(-1).astype(bool)
    expected = num_lambda(levels, n_ops)
    if mask.size != expected:
        raise ValueError(f"λ mask has {mask.size} entries, a block of M={levels}, N={n_ops} "
                         f"needs {expected}")
    return mask


def live_ops(mask, levels: int, n_ops: int) -> Set[Node]:
    """Operation nodes that survive pruning under a boolean λ mask.

    An operation is kept iff it has at least one live input (level-1 operations always
    do: they read the block input without a λ; an edge from the block input is always
    live) and at least one kept outgoing edge to a kept operation or to the block output.
    The two conditions are re-applied until nothing changes.

    Parameters
    ----------
    mask : array-like of bool, shape ``(num_lambda(levels, n_ops),)``
        ``True`` where λ is non-zero, in the flat order of :func:`block_edges`.
    levels, n_ops : int
        M and N.

    Returns
    -------
    set of (level, op) tuples
    """
    mask = _check_mask(mask, levels, n_ops)
    edges = [edge for edge, keep in zip(block_edges(levels, n_ops), mask) if keep]
    out = output_node(levels)
    alive = set(op_nodes(levels, n_ops))
    while True:
        fed = {dst for src, dst in edges if src == INPUT or src in alive}
        used = {src for src, dst in edges if dst == out or dst in alive}
        new = {node for node in alive if (node[0] == 1 or node in fed) and node in used}
        if new == alive:
            return alive
        alive = new


def live_edges(mask, levels: int, n_ops: int) -> List[Tuple[Node, Node]]:
    """The λ edges that remain after pruning: kept by ``mask`` and joining live nodes."""
    mask = _check_mask(mask, levels, n_ops)
    alive = live_ops(mask, levels, n_ops) | {INPUT, output_node(levels)}
    return [(src, dst) for (src, dst), keep in zip(block_edges(levels, n_ops), mask)
            if keep and src in alive and dst in alive]


# ----------------------------------------------------------------------------- what a pruned block computes


@dataclass(frozen=True)
class LevelPlan:
    """What one level ``i >= 2`` of a pruned block computes.

    Attributes
    ----------
    level : int
        The level ``i``.
    rows : tuple of int
        Op indices ``j`` of the live ops of the level (the rows of its λ matrix kept).
    sources : tuple of int
        Positions in :func:`level_sources` of the nodes these ops read through a kept edge
        (``0`` is the block input; the columns of its λ matrix kept).
    """

    level: int
    rows: Tuple[int, ...]
    sources: Tuple[int, ...]


@dataclass(frozen=True)
class LivePlan:
    """What a block computes once the λ outside ``keep`` are gone for good.

    Attributes
    ----------
    first : tuple of int
        Live level-1 ops (they read the block input).
    levels : tuple of LevelPlan
        Levels ``2..M`` with at least one live op.
    outputs : tuple of int
        Flat op positions ``(level - 1)·N + j`` of the live ops whose output edge is kept, in
        order (the channel blocks of the ``1 x 1`` reduction kept).
    """

    first: Tuple[int, ...]
    levels: Tuple[LevelPlan, ...]
    outputs: Tuple[int, ...]


def live_plan(keep, levels: int, n_ops: int) -> LivePlan:
    """The computation a block keeps under the mask ``keep`` of λ not pruned.

    The live ops are :func:`live_ops` of ``keep`` (the derivation's rule); each level keeps
    the rows of its live ops and the columns of the nodes they read through a kept edge;
    the output keeps the live ops whose output λ is kept.
    """
    keep = _check_mask(keep, levels, n_ops)
    alive = live_ops(keep, levels, n_ops)
    plans = []
    for level in range(2, levels + 1):
        rows = tuple(j for j in range(n_ops) if (level, j) in alive)
        if not rows:
            continue
        start, _ = level_slice(levels, n_ops, level)
        sources = level_sources(level, n_ops)
        k = len(sources)
        used = tuple(s for s, node in enumerate(sources)
                     if (node == INPUT or node in alive) and any(keep[start + j * k + s] for j in rows))
        plans.append(LevelPlan(level, rows, used))
    out_start, _ = level_slice(levels, n_ops, levels + 1)
    outputs = tuple(p for p, node in enumerate(op_nodes(levels, n_ops)) if node in alive and keep[out_start + p])
    first = tuple(j for j in range(n_ops) if (1, j) in alive)
    return LivePlan(first, tuple(plans), outputs)


def runs(indices: Sequence[int]) -> List[Tuple[int, int]]:
    """Sorted indices as ``(start, stop)`` runs of consecutive values: ``[0, 1, 2, 5] -> [(0, 3), (5, 6)]``."""
    out: List[Tuple[int, int]] = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out
