"""The DARTS search network's cells as a chain of one-input layers (its forward and mirror mode).

A cell reads two states, the two previous cells' outputs; mirror mode
(:mod:`dso_nas.engine.mirror`) recomputes a chain of one-input layers. :class:`CellLink` reads
``concat(pre0(s0), s1)`` and writes ``concat(pre0'(s1), out)``; the links are views over the
network's own blocks (same Parameters, same checkpoint keys), kept outside Gluon's child
registry by :class:`Unregistered`.
"""
from __future__ import annotations

from typing import Optional

from mxnet.gluon import HybridBlock

__all__ = ["Unregistered", "StemLink", "CellLink"]


class Unregistered:
    """Holds blocks outside Gluon's child registry (an attribute that is a Block, or a list of
    them, would be registered or warned about)."""

    def __init__(self, **items) -> None:
        self.__dict__.update(items)


class StemLink(HybridBlock):
    """Mirror-mode link 0: the stem, and the first cell's preprocessing of its output, packed
    ``concat(pre0(s), s)`` along the channels (see :class:`CellLink`)."""

    def __init__(self, stem: HybridBlock, first: HybridBlock, **kwargs):
        super().__init__(**kwargs)
        self.stem, self.next_pre0 = stem, first.pre0  # registered: the link's children

    def hybrid_forward(self, F, x):
        s = self.stem(x)
        return F.concat(self.next_pre0(s), s, dim=1)


class CellLink(HybridBlock):
    """Mirror-mode link of one cell: a one-input, one-output layer over the cell's blocks.

    A cell reads two states, the two previous cells' outputs; mirror mode
    (:mod:`dso_nas.engine.mirror`) recomputes a chain of one-input layers. The link reads
    ``concat(pre0(s0), s1)`` - the cell's first input already preprocessed (it has the size of
    the cell's output, whatever ``s0``'s size) beside its second - and writes
    ``concat(pre0'(s1), out)`` for the next cell (``pre0'`` the next cell's preprocessing), or
    ``out`` after the last cell. Every block is the cell's own (the same Parameters, the same
    structural names in checkpoints); only the blocks the link computes are its children, so
    each Parameter belongs to the link that reads it.
    """

    def __init__(self, cell: HybridBlock, nxt: Optional[HybridBlock], **kwargs):
        super().__init__(**kwargs)
        self._ref = Unregistered(cell=cell)  # the cell computes, its blocks below are the children
        self._split = cell.plan.channels
        with self.name_scope():
            self.lam = cell.lam
            self.params.update({cell.lam.name: cell.lam})
        self.register_child(cell.pre1, "pre1")
        for k, op in enumerate(cell.ops()):
            self.register_child(op, f"op{k}")
        self.next_pre0 = nxt.pre0 if nxt is not None else None

    def hybrid_forward(self, F, x, lam):
        p0 = F.slice_axis(x, axis=1, begin=0, end=self._split)
        s1 = F.slice_axis(x, axis=1, begin=self._split, end=None)
        cell = self._ref.cell
        nodes = cell.nodes(F, p0, cell.pre1(s1), lam)
        if self.next_pre0 is None:
            return F.concat(*nodes, dim=1)
        return F.concat(self.next_pre0(s1), *nodes, dim=1)
