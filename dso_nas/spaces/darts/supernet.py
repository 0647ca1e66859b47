"""The DARTS space's search network with DSO-NAS's λ (one per edge and op).

A :class:`SearchCell` computes every candidate op on every edge; edge ``(j, i)`` adds
``Σ_o λ_{e,o} · op_o(s_i)`` to node ``j`` (DSO-NAS's scaling factors in place of DARTS'
softmax), and the cell concatenates its nodes. λ are shared by every cell of a kind (DARTS'
α are): two Parameters, ``normal_lambda`` and ``reduce_lambda``, each ``(edges · ops,)`` in
edge-major order (:func:`~dso_nas.spaces.darts.plan.edges`), initialized to ``1 / ops`` (the
weight DARTS' softmax gives every op at the start: a node sums up to ``(1 + steps) · ops`` op
outputs, and at λ = 1 the sums, unnormalized, grew cell after cell to a first loss of ~170).

As in DARTS' search network, the ops and the preprocessing have no BN affine parameters
during the search (``affine=False``), and a pooling op is followed by a BN without affine.
``none`` contributes zero whatever its λ, so it is not computed (its λ gets only the ℓ1 pull).
After a prune (:meth:`SearchCell.drop_pruned`) the pruned ops are not computed either.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import HybridBlock, nn

from ...models.heads import Classifier, HeadFactory
from ...ops import REFERENCE, Cost, check_backend, sum_cost
from ...ops import darts_op
from ...ops.darts import NONE, DartsBN, FactorizedReduce, ReLUConvBN, darts_bn_cost
from .plan import CellPlan, cell_input_sizes, cell_plans, edges
from .links import CellLink, StemLink, Unregistered
from .stem import DartsStem, cell_output_hw, preprocess_cost, stem_cost, stem_output_hw

__all__ = ["SearchCell", "DartsSuperNet", "WEIGHTINGS"]

#: How the architecture parameters weigh an edge's ops (:class:`SearchCell`).
WEIGHTINGS = ("linear", "softmax")


def _is_pool(name: str) -> bool:
    return "pool" in name


class SearchCell(HybridBlock):
    """One cell of the search network: every op on every edge, scaled by its λ.

    Parameters
    ----------
    plan : CellPlan
        Where the cell is and its widths.
    ops : sequence of str
        The candidate ops (bare DARTS names).
    steps : int
        Intermediate nodes.
    lam : gluon.Parameter
        The λ of this cell's kind, ``(edges · ops,)``.
    affine, bn_eps, bn_momentum, backend
        BatchNorm settings and op form of every layer.
    weighting : {"linear", "softmax"}
        An op's weight on its edge: its λ entry (DSO-NAS, NASP), or the softmax of its edge's
        entries (DARTS).
    """

    def __init__(self, plan: CellPlan, ops: Sequence[str], steps: int, lam: gluon.Parameter, *,
                 affine: bool = False, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, weighting: str = "linear", **kwargs):
        super().__init__(**kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown edge weighting {weighting!r}; valid: {WEIGHTINGS}")
        self.plan, self.op_names, self.steps, self.affine = plan, tuple(ops), steps, affine
        self.weighting = weighting
        self.edges = edges(steps)
        self.backend = check_backend(backend)
        n = len(self.op_names)
        if tuple(lam.shape) != (len(self.edges) * n,):
            raise ValueError(f"λ has shape {lam.shape}, a cell of {steps} nodes and {n} ops needs "
                             f"({len(self.edges) * n},)")
        bn = dict(affine=affine, bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend)
        c = plan.channels
        with self.name_scope():
            self.lam = lam
            self.params.update({lam.name: lam})
            self.pre0 = (FactorizedReduce(plan.c_prev_prev, c, prefix="pre0_", **bn) if plan.reduction_prev
                         else ReLUConvBN(plan.c_prev_prev, c, 1, prefix="pre0_", **bn))
            self.pre1 = ReLUConvBN(plan.c_prev, c, 1, prefix="pre1_", **bn)
            self._ops: Dict[Tuple[int, int], HybridBlock] = {}
            for e, (j, i) in enumerate(self.edges):
                stride = 2 if plan.reduction and i < 2 else 1
                for k, name in enumerate(self.op_names):
                    if name == NONE:
                        continue
                    tag = f"e{e}_{name}"
                    op = darts_op(name).build(c, stride, affine, bn_eps, bn_momentum, backend=self.backend,
                                              prefix=f"{tag}_")
                    if _is_pool(name):
                        seq = nn.HybridSequential(prefix=f"{tag}_seq_")
                        seq.add(op, DartsBN(c, affine, bn_eps, bn_momentum, prefix=f"{tag}_bn_"))
                        op = seq
                    self.register_child(op, tag)
                    self._ops[(e, k)] = op
        self.kept: Tuple[Tuple[int, int], ...] = tuple(sorted(self._ops))
        self.selected: Optional[frozenset] = None  # NASP's weight step: compute only these (edge, op)

    def drop_pruned(self, keep: np.ndarray) -> bool:
        """Stop computing the ops whose λ entry is pruned for good (``keep`` False, edge-major);
        their parameters get no gradient. Whether the computation changed (hybridize again)."""
        keep = np.asarray(keep, bool).reshape(len(self.edges), len(self.op_names))
        kept = tuple(key for key in sorted(self._ops) if keep[key])
        if kept == self.kept:
            return False
        self.kept = kept
        for key, op in self._ops.items():
            if key not in kept:
                for param in op.collect_params().values():
                    param.grad_req = "null"
        return True

    def hybrid_forward(self, F, s0, s1, lam):
        return F.concat(*self.nodes(F, self.pre0(s0), self.pre1(s1), lam), dim=1)

    def nodes(self, F, p0, p1, lam) -> list:
        """The intermediate nodes from the preprocessed inputs ``p0``, ``p1`` (the cell's output
        is their concatenation)."""
        states = [p0, p1]
        n = len(self.op_names)
        live = set(self.computed())
        if self.weighting == "softmax":  # DARTS: each edge's op weights are the softmax of its entries
            lam = F.reshape(F.softmax(F.reshape(lam, (len(self.edges), n)), axis=1), (-1,))
        e = 0
        for j in range(2, self.steps + 2):
            terms = []
            for i in range(j):
                for k in range(n):
                    if (e, k) in live:
                        weight = F.reshape(F.slice_axis(lam, axis=0, begin=e * n + k, end=e * n + k + 1),
                                           (1, 1, 1, 1))
                        terms.append(F.broadcast_mul(self._ops[(e, k)](states[i]), weight))
                e += 1
            if terms:
                states.append(F.add_n(*terms) if len(terms) > 1 else terms[0])
            else:  # every op into this node pruned: zeros of the node's shape (λ kept in the graph)
                ref = states[1]
                if self.plan.reduction:
                    ref = F.slice(ref, begin=(None, None, None, None), end=(None, None, None, None),
                                  step=(1, 1, 2, 2))
                states.append(F.broadcast_mul(ref, F.reshape(F.sum(lam) * 0, (1, 1, 1, 1))))
        return states[2:]

    def computed(self) -> Tuple[Tuple[int, int], ...]:
        """The ``(edge, op)`` pairs the cell computes: not pruned, and selected when a selection is set."""
        return self.kept if self.selected is None else tuple(k for k in self.kept if k in self.selected)

    def select(self, mask: Optional[np.ndarray]) -> bool:
        """Compute only the ``(edge, op)`` entries ``mask`` holds (edge-major; ``None``: all that are
        not pruned). Parameters are not touched: an unselected op just leaves the graph (NASP's
        weight step). Whether the computation changed (hybridize again)."""
        chosen = None if mask is None else frozenset(
            (int(e), int(k)) for e, k in zip(*np.nonzero(np.asarray(mask, bool).reshape(len(self.edges), -1))))
        if chosen == self.selected:
            return False
        self.selected = chosen
        return True

    def ops(self) -> List[HybridBlock]:
        """The op blocks this cell computes, edge-major."""
        return [self._ops[key] for key in self.computed()]

    def entry_mac(self, hw1: Tuple[int, int]) -> np.ndarray:
        """Per λ entry (edge-major), the MAC of the op it scales on inputs of ``hw1`` (Eq. 18)."""
        p, c = self.plan, self.plan.channels
        out_hw = cell_output_hw(hw1, p.reduction)
        mac = np.zeros((len(self.edges), len(self.op_names)))
        for e, (j, i) in enumerate(self.edges):
            stride = 2 if p.reduction and i < 2 else 1
            hi, wi = hw1 if i < 2 else out_hw
            for k, name in enumerate(self.op_names):
                if name != NONE:
                    mac[e, k] = darts_op(name).cost(c, hi, wi, stride, self.affine).mac
        return mac.reshape(-1)

    def cost(self, hw0: Tuple[int, int], hw1: Tuple[int, int], mask: Optional[np.ndarray] = None) -> Cost:
        """Analytic cost on inputs s0 of ``hw0`` and s1 of ``hw1`` (``(H, W)``), pruned by a λ
        mask (edge-major, ``True`` = kept)."""
        p, c, affine = self.plan, self.plan.channels, self.affine
        keep = (np.ones((len(self.edges), len(self.op_names)), bool) if mask is None
                else np.asarray(mask, bool).reshape(len(self.edges), len(self.op_names)))
        total = (preprocess_cost(p.c_prev_prev, c, hw0[0], hw0[1], p.reduction_prev, affine)
                 + preprocess_cost(p.c_prev, c, hw1[0], hw1[1], False, affine))
        out_h, out_w = cell_output_hw(hw1, p.reduction)
        e = 0
        for j in range(2, self.steps + 2):
            terms = 0
            for i in range(j):
                stride = 2 if p.reduction and i < 2 else 1
                hi, wi = hw1 if i < 2 else (out_h, out_w)
                for k, name in enumerate(self.op_names):
                    if name != NONE and keep[e, k]:
                        total = total + darts_op(name).cost(c, hi, wi, stride, affine)
                        if _is_pool(name):
                            total = total + darts_bn_cost(c, affine)
                        terms += 1
                e += 1
            total = total + sum_cost(terms, c, out_h, out_w)
        return total



class DartsSuperNet(HybridBlock):
    """DARTS' search network (stem, ``layers`` search cells, the task's head) with two λ.

    Parameters
    ----------
    in_channels : int
        Image channels.
    channels : int
        C of the first cells (16 in DARTS' search).
    layers : int
        Cells (8 in DARTS' search).
    steps : int
        Intermediate nodes per cell (4).
    stem_multiplier : int
        The stem's width is ``stem_multiplier · C`` (3).
    stem_stride : int
        Stride of the stem's conv (1 in DARTS).
    normal_ops, reduce_ops : sequence of str
        Candidate ops of the normal and the reduction cells.
    num_classes : int
        Classifier outputs (when no ``head`` is given).
    affine, bn_eps, bn_momentum, backend
        BatchNorm settings (``affine`` for the cells; the stem's BN is affine) and op form.
    head : callable, optional
        The task's head on the last cell's output.
    """

    def __init__(self, *, in_channels: int, channels: int, layers: int, steps: int, stem_multiplier: int,
                 stem_stride: int = 1, normal_ops: Sequence[str], reduce_ops: Sequence[str], num_classes: int, affine: bool = False,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE,
                 head: Optional[HeadFactory] = None, weighting: str = "linear", **kwargs):
        super().__init__(**kwargs)
        self._args = dict(in_channels=in_channels, channels=channels, layers=layers, steps=steps,
                          stem_multiplier=stem_multiplier, stem_stride=stem_stride, normal_ops=tuple(normal_ops),
                          reduce_ops=tuple(reduce_ops), num_classes=num_classes, affine=affine, bn_eps=bn_eps,
                          bn_momentum=bn_momentum, backend=backend, head=head, weighting=weighting)
        self.weighting = weighting
        self.in_channels, self.channels, self.layers, self.steps = in_channels, channels, layers, steps
        self.stem_multiplier, self.stem_stride = stem_multiplier, stem_stride
        self.ops = {"normal": tuple(normal_ops), "reduce": tuple(reduce_ops)}
        self.backend = check_backend(backend)
        self.plans: List[CellPlan] = cell_plans(channels, layers, stem_multiplier, [steps] * layers)
        n_edges = len(edges(steps))
        with self.name_scope():
            self._lambdas = {kind: self.params.get(f"{kind}_lambda", shape=(n_edges * len(ops),),
                                                   init=mx.init.Constant(1.0 / len(ops)))
                             for kind, ops in self.ops.items()}
            self.stem = DartsStem(in_channels, stem_multiplier * channels, stride=stem_stride, bn_eps=bn_eps,
                                  bn_momentum=bn_momentum, prefix="stem_")
            self.cells = nn.HybridSequential(prefix="")
            for p in self.plans:
                self.cells.add(SearchCell(p, self.ops[p.kind], steps, self._lambdas[p.kind], affine=affine,
                                          bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend,
                                          weighting=weighting, prefix=f"cell{p.index}_"))
            c_last = steps * self.plans[-1].channels
            self.classifier = (Classifier(c_last, num_classes, 0.0, self.backend, prefix="classifier_")
                               if head is None else head(c_last, "classifier_"))
        self._chain = Unregistered(links=[])
        self._relink()

    def _relink(self) -> None:
        """Build the chain of links the network runs (:class:`~dso_nas.spaces.darts.links.CellLink`), after a prune too
        (a link's children are the blocks it computes). Not children of the network: the
        structural names, and so the checkpoints, are those of ``stem``, ``cells``, ``classifier``."""
        cells = list(self.cells)
        self._chain.links = [StemLink(self.stem, cells[0], prefix=f"{self.stem.prefix}link_")]
        self._chain.links += [CellLink(cell, cells[i + 1] if i + 1 < len(cells) else None, prefix=f"{cell.prefix}link_")
                        for i, cell in enumerate(cells)]

    def hybrid_forward(self, F, x):
        for link in self._chain.links:  # the cells as a chain of one-input layers (mirror mode's form too)
            x = link(x)
        return self.classifier(x)

    def sequential_layers(self) -> List[HybridBlock]:
        """The layers the network applies in sequence (the stem's and the cells' links, the head),
        for mirror mode (:mod:`dso_nas.engine.mirror`)."""
        return [*self._chain.links, self.classifier]

    def twin(self) -> "DartsSuperNet":
        """A second network on this one's Parameters (the same names, the same arrays), for a
        computation with another graph beside this one's (NASP's selected-op weight step)."""
        return DartsSuperNet(**self._args, prefix=self.prefix, params=self.collect_params())

    def select(self, masks: Optional[Sequence[np.ndarray]]) -> bool:
        """Compute only the entries of the two masks (normal, reduce; ``None``: every entry not
        pruned) in every cell of their kind (:meth:`SearchCell.select`). Whether the computation
        changed (hybridize again)."""
        changed = any([cell.select(None if masks is None else masks[self.lambda_index(cell)])
                       for cell in self.search_cells()])
        if changed:
            self._relink()
        return changed

    def drop_pruned(self, keep: Sequence[np.ndarray]) -> bool:
        """Stop computing the ops pruned for good (``keep``: per λ, edge-major, ``False`` =
        pruned). Whether the computation changed (hybridize again, rebuild mirror executors)."""
        changed = any([cell.drop_pruned(keep[self.lambda_index(cell)]) for cell in self.search_cells()])
        if changed:
            self._relink()
        return changed

    # -- parameter groups ------------------------------------------------------------------
    def lambda_params(self) -> List[gluon.Parameter]:
        """``[normal_lambda, reduce_lambda]``."""
        return [self._lambdas["normal"], self._lambdas["reduce"]]

    def weight_params(self) -> gluon.ParameterDict:
        """Every Parameter except the λ."""
        lam = {p.name for p in self.lambda_params()}
        out = gluon.ParameterDict(self.prefix)
        out.update({n: p for n, p in self.collect_params().items() if n not in lam})
        return out

    def search_cells(self) -> List[SearchCell]:
        """The cells in network order."""
        return list(self.cells)

    def lambda_index(self, cell: SearchCell) -> int:
        """Which of :meth:`lambda_params` ``cell`` uses."""
        return 1 if cell.plan.reduction else 0

    # -- analytic shapes and costs ---------------------------------------------------------
    def cell_inputs(self, input_hw: Tuple[int, int]) -> List[Tuple[Tuple[int, int], Tuple[int, int]]]:
        """The ``(H, W)`` of each cell's two inputs (s0, s1) for an image of ``input_hw``."""
        return cell_input_sizes(self.plans, stem_output_hw(tuple(input_hw), self.stem_stride))

    def cost(self, input_hw: Tuple[int, int], masks: Optional[Sequence[np.ndarray]] = None) -> Dict[str, object]:
        """Analytic cost, optionally pruned by the two λ masks: ``total``, ``blocks`` (one per
        cell), ``stem``, ``classifier``; λ are not counted."""
        if masks is not None and len(masks) != 2:
            raise ValueError(f"expected 2 λ masks (normal, reduce), got {len(masks)}")
        h, w = input_hw
        stem = stem_cost(self.in_channels, self.stem_multiplier * self.channels, h, w, self.stem_stride)
        sizes = self.cell_inputs(input_hw)
        blocks = [cell.cost(hw0, hw1, None if masks is None else masks[self.lambda_index(cell)])
                  for cell, (hw0, hw1) in zip(self.cells, sizes)]
        hl, wl = cell_output_hw(sizes[-1][1], self.plans[-1].reduction)
        classifier = self.classifier.cost(hl, wl)
        total = stem + sum(blocks, Cost.zero()) + classifier
        return {"total": total, "blocks": blocks, "stem": stem, "classifier": classifier}
