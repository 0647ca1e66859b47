"""Deriving cells from the λ of the DARTS space: DSO-NAS's rule and DARTS' rule.

* ``nonzero`` (DSO-NAS): keep every ``(edge, op)`` whose λ is non-zero (``none`` never
  counts: it adds nothing). A node none of whose entries is kept is dead; an entry that reads
  a dead node goes too, until nothing changes. The cell concatenates its live nodes. A cell
  with no live node keeps node 2's strongest op on input 1 (with a warning), so that it has
  an output.
* ``darts`` (DARTS' ``genotype()``): per node the two incoming edges whose strongest
  non-``none`` op has the largest ``|λ|``, per such edge that op; every node concatenated.
  A DSO-NAS cell derived this way has DARTS' fixed size, for comparisons at equal size.
"""
from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

import numpy as np

from ...ops.darts import NONE
from .arch import Cell
from .plan import edges

__all__ = ["DERIVE_RULES", "darts_rule_mask", "derive_cell", "live_entries"]

LOG = logging.getLogger("dso_nas")
#: ``model.darts.derive``.
DERIVE_RULES = ("nonzero", "darts")


def _weights(lam: np.ndarray, steps: int, ops: Sequence[str]) -> np.ndarray:
    """``|λ|`` as ``(edges, ops)`` with ``none`` set to zero."""
    w = np.abs(np.asarray(lam, dtype=np.float64).reshape(len(edges(steps)), len(ops)))
    w[:, [k for k, name in enumerate(ops) if name == NONE]] = 0.0
    return w


def live_entries(keep: np.ndarray, steps: int, ops: Sequence[str]) -> np.ndarray:
    """``keep`` (``(edges · ops,)``, ``True`` = kept) without ``none`` and without the entries
    that a dead node makes useless: those into a dead node (none here) and those reading one."""
    keep = np.asarray(keep, bool).reshape(len(edges(steps)), len(ops)).copy()
    keep[:, [k for k, name in enumerate(ops) if name == NONE]] = False
    plan = edges(steps)
    while True:
        alive = {0, 1} | {j for j in range(2, steps + 2)
                          if any(keep[e].any() for e, (jj, _) in enumerate(plan) if jj == j)}
        changed = False
        for e, (j, i) in enumerate(plan):
            if i not in alive and keep[e].any():
                keep[e] = False
                changed = True
        if not changed:
            return keep.reshape(-1)


def darts_rule_mask(lam: np.ndarray, steps: int, ops: Sequence[str]) -> np.ndarray:
    """The entries DARTS' rule keeps (``(edges · ops,)`` booleans, edge-major): per node the two
    incoming edges whose strongest non-``none`` ``|λ|`` is largest, per such edge that op (ties,
    all zero, go to the first edges and the first real op)."""
    plan = edges(steps)
    w = _weights(lam, steps, ops)
    keep = np.zeros(w.shape, bool)
    real = [k for k, name in enumerate(ops) if name != NONE]
    for j in range(2, steps + 2):
        incoming = [e for e, (jj, _) in enumerate(plan) if jj == j]
        for e in sorted(incoming, key=lambda e: -w[e].max())[:2]:
            keep[e, real[int(np.argmax(w[e, real]))]] = True
    return keep.reshape(-1)


def derive_cell(lam: np.ndarray, steps: int, ops: Sequence[str], rule: str, kind: str = "normal") -> Cell:
    """The cell ``lam`` (one cell kind's λ, edge-major) derives to under ``rule``."""
    plan = edges(steps)
    w = _weights(lam, steps, ops)
    nodes: List[List[Tuple[str, int]]] = [[] for _ in range(steps)]
    if rule == "darts":
        keep = darts_rule_mask(lam, steps, ops).reshape(w.shape)
        for e, (j, i) in enumerate(plan):  # per node its edges in input order
            for k in np.flatnonzero(keep[e]):
                nodes[j - 2].append((ops[int(k)], i))
        return Cell(tuple(tuple(n) for n in nodes), tuple(range(2, steps + 2)))
    if rule != "nonzero":
        raise ValueError(f"unknown derivation rule {rule!r}; valid: {DERIVE_RULES}")
    keep = live_entries(w > 0, steps, ops).reshape(w.shape)
    for e, (j, i) in enumerate(plan):
        for k in np.flatnonzero(keep[e]):
            nodes[j - 2].append((ops[int(k)], i))
    live = tuple(j for j in range(2, steps + 2) if nodes[j - 2])
    if not live:
        first = [e for e, (j, i) in enumerate(plan) if j == 2 and i == 1][0]
        k = int(np.argmax(w[first])) if w[first].max() > 0 else next(
            k for k, name in enumerate(ops) if name != NONE)
        LOG.warning("the %s cell keeps no op: node 2 keeps %s on input 1", kind, ops[k])
        nodes[0] = [(ops[k], 1)]
        live = (2,)
    return Cell(tuple(tuple(n) for n in nodes), live)
