"""The DARTS network's plan: which cells reduce, their widths, and each cell's edges.

The same plan serves the search network (8 cells, C = 16) and the evaluation network (20
cells, C = 36): a ``3 x 3`` stem conv to ``stem_multiplier · C``, then ``layers`` cells, the
ones at ``layers // 3`` and ``2 · layers // 3`` reduction cells that halve the resolution and
double C. A cell reads the two previous outputs, preprocessed to C channels (a ``1 x 1``
ReLU-conv-BN; the older one through a factorized reduce when the cell before is a reduction),
and outputs the concatenation of its concatenated nodes (``len(concat) · C`` channels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

__all__ = ["CellPlan", "cell_input_sizes", "cell_plans", "edges", "num_edges", "reduction_indices", "aux_index"]


def reduction_indices(layers: int) -> Tuple[int, int]:
    """The reduction cells' positions: ``layers // 3`` and ``2 · layers // 3`` (DARTS)."""
    return layers // 3, 2 * layers // 3


def aux_index(layers: int) -> int:
    """The cell after which DARTS' auxiliary head reads (the second reduction cell)."""
    return 2 * layers // 3


def edges(steps: int) -> List[Tuple[int, int]]:
    """Every ``(node, input)`` edge of a cell in λ order: node ``j`` (from 2) reads ``0 .. j-1``."""
    return [(j, i) for j in range(2, steps + 2) for i in range(j)]


def num_edges(steps: int) -> int:
    """``Σ_j (2 + j)`` over the intermediate nodes: 14 for 4 nodes."""
    return len(edges(steps))


@dataclass(frozen=True)
class CellPlan:
    """One cell of the network: its kind, its input widths and its width C."""

    index: int
    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int
    channels: int

    @property
    def kind(self) -> str:
        return "reduce" if self.reduction else "normal"


def cell_plans(channels: int, layers: int, stem_multiplier: int, multipliers: Sequence[int]) -> List[CellPlan]:
    """The cells of a network of ``layers`` cells on a ``channels``-wide first stage.

    ``multipliers[k]`` is the number of nodes cell ``k`` concatenates (its output is
    ``multipliers[k] · C_k`` channels): the search network's 4, a derived cell's ``len(concat)``.
    """
    reductions = reduction_indices(layers)
    c_pp = c_p = stem_multiplier * channels
    c = channels
    out, reduction_prev = [], False
    for k in range(layers):
        reduction = k in reductions
        if reduction:
            c *= 2
        out.append(CellPlan(k, reduction, reduction_prev, c_pp, c_p, c))
        c_pp, c_p = c_p, multipliers[k] * c
        reduction_prev = reduction
    return out


def cell_input_sizes(plans: Sequence[CellPlan], input_hw: Tuple[int, int]) -> List[Tuple[Tuple[int, int], Tuple[int, int]]]:
    """Per cell, the ``(H, W)`` of its inputs s0 and s1 for an image of ``input_hw`` (the stem
    keeps the size; a reduction cell's output is ``ceil(H / 2)``)."""
    prev_prev = prev = tuple(input_hw)
    out = []
    for p in plans:
        out.append((prev_prev, prev))
        here = ((prev[0] + 1) // 2, (prev[1] + 1) // 2) if p.reduction else prev
        prev_prev, prev = prev, here
    return out
