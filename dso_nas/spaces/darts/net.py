"""The DARTS evaluation network of an architecture file, and its analytic cost.

DARTS' ``NetworkCIFAR``: the stem, ``layers`` cells built from the file's normal and reduction
cell (reductions at 1/3 and 2/3 of the depth, stride 2 on the entries that read the cell
inputs), the task's head on the last cell, and an auxiliary head after the second reduction
cell when ``aux_weight > 0``. Drop path (training only) zeroes a whole sample's output of an
op that is not the identity with probability ``p``, the same ``p`` in every cell
(:meth:`DartsNet.set_drop_path`; the retraining ramps it linearly over the epochs, as DARTS).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from mxnet.gluon import HybridBlock, nn

from ...models.heads import AuxHead, Classifier, HeadCost, HeadFactory, aux_head_cost, classifier_cost
from ...ops import REFERENCE, Cost, check_backend, sum_cost
from ...ops import darts_op
from ...ops.darts import SKIP, FactorizedReduce, ReLUConvBN
from .arch import Cell, DartsArchitecture
from .plan import CellPlan, aux_index, cell_input_sizes, cell_plans
from .stem import DartsStem, cell_output_hw, preprocess_cost, stem_cost, stem_output_hw

__all__ = ["DerivedCell", "DartsNet", "darts_cost", "net_plans"]


def _drop(F, x, p: float):
    """Per-sample drop path: the whole map of a sample is zeroed with probability ``p`` (training only)."""
    return F.Dropout(x, p=p, axes=(1, 2, 3)) if p > 0 else x


def net_plans(arch: DartsArchitecture, channels: int, layers: int, stem_multiplier: int) -> List[CellPlan]:
    """The cell plans of ``arch``'s network: each cell's output is ``len(concat) · C`` wide."""
    reductions = [k in (layers // 3, 2 * layers // 3) for k in range(layers)]
    multipliers = [len(arch.cell("reduce" if r else "normal").concat) for r in reductions]
    return cell_plans(channels, layers, stem_multiplier, multipliers)


def cell_reads(cell: Cell) -> set:
    """The nodes some entry of ``cell`` reads (``0`` and ``1``: the cell's inputs)."""
    return {i for _, _, i in cell.entries()}


class DerivedCell(HybridBlock):
    """One cell of the evaluation network: the file's entries, summed per node, concatenated."""

    def __init__(self, cell: Cell, plan: CellPlan, *, drop_path: float = 0.0, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.cell, self.plan, self.drop_path = cell, plan, drop_path
        self.backend = check_backend(backend)
        bn = dict(affine=affine, bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend)
        c = plan.channels
        self._entries: List[Tuple[int, int, bool, HybridBlock]] = []
        with self.name_scope():
            # an input no entry reads gets no preprocessing: it would hold parameters that never train
            reads = cell_reads(cell)
            self.pre0 = None if 0 not in reads else (
                FactorizedReduce(plan.c_prev_prev, c, prefix="pre0_", **bn) if plan.reduction_prev
                else ReLUConvBN(plan.c_prev_prev, c, 1, prefix="pre0_", **bn))
            self.pre1 = ReLUConvBN(plan.c_prev, c, 1, prefix="pre1_", **bn) if 1 in reads else None
            for n, (j, op, i) in enumerate(cell.entries()):
                stride = 2 if plan.reduction and i < 2 else 1
                block = darts_op(op).build(c, stride, affine, bn_eps, bn_momentum, backend=self.backend,
                                           prefix=f"n{j}_{n}_{op}_")
                self.register_child(block, f"n{j}_{n}")
                self._entries.append((j, i, op == SKIP and stride == 1, block))

    def hybrid_forward(self, F, s0, s1):
        states: Dict[int, Any] = {}
        if self.pre0 is not None:
            states[0] = self.pre0(s0)
        if self.pre1 is not None:
            states[1] = self.pre1(s1)
        for j in range(2, self.cell.steps + 2):
            terms = [out if identity else _drop(F, out, self.drop_path)
                     for node, i, identity, block in self._entries if node == j
                     for out in (block(states[i]),)]
            if terms:
                states[j] = F.add_n(*terms) if len(terms) > 1 else terms[0]
        outs = [states[j] for j in self.cell.concat]
        return F.concat(*outs, dim=1) if len(outs) > 1 else outs[0]


def derived_cell_cost(cell: Cell, plan: CellPlan, hw0: Tuple[int, int], hw1: Tuple[int, int],
                      affine: bool = True) -> Cost:
    """Analytic cost of :class:`DerivedCell` on inputs of ``hw0`` and ``hw1``."""
    c = plan.channels
    reads = cell_reads(cell)
    total = Cost.zero()
    if 0 in reads:
        total = total + preprocess_cost(plan.c_prev_prev, c, hw0[0], hw0[1], plan.reduction_prev, affine)
    if 1 in reads:
        total = total + preprocess_cost(plan.c_prev, c, hw1[0], hw1[1], False, affine)
    out_h, out_w = cell_output_hw(hw1, plan.reduction)
    for node in cell.nodes:
        for op, i in node:
            stride = 2 if plan.reduction and i < 2 else 1
            hi, wi = hw1 if i < 2 else (out_h, out_w)
            total = total + darts_op(op).cost(c, hi, wi, stride, affine)
        total = total + sum_cost(len(node), c, out_h, out_w)
    return total


class DartsNet(HybridBlock):
    """DARTS' evaluation network of ``arch``.

    Parameters
    ----------
    arch : DartsArchitecture
        The normal and reduction cell.
    channels : int
        C of the first cells (36 for DARTS' CIFAR-10 network).
    layers : int
        Cells (20).
    stem_multiplier : int
        Stem width ``stem_multiplier · C`` (3).
    stem_stride : int
        Stride of the stem's conv (1 in DARTS).
    num_classes : int
        Outputs of the default classifier and of the auxiliary head.
    dropout : float
        Dropout before the default classifier.
    drop_path : float
        Drop-path probability of every non-identity op (training only).
    aux_weight : float
        > 0 adds the auxiliary head after the second reduction cell; the forward then returns
        ``(logits, aux_logits)``.
    affine, bn_eps, bn_momentum, backend
        BatchNorm settings and op form.
    head, aux_head : callable, optional
        The task's head and auxiliary head (``(in_channels, prefix) -> HybridBlock``).
    """

    def __init__(self, arch: DartsArchitecture, *, channels: int, layers: int, stem_multiplier: int = 3,
                 stem_stride: int = 1,
                 num_classes: int, dropout: float = 0.0, drop_path: float = 0.0, aux_weight: float = 0.0,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE,
                 head: Optional[HeadFactory] = None, aux_head: Optional[HeadFactory] = None, **kwargs):
        super().__init__(**kwargs)
        self.arch, self.channels, self.layers = arch, channels, layers
        self.backend = check_backend(backend)
        self.plans = net_plans(arch, channels, layers, stem_multiplier)
        self.aux_at = aux_index(layers) if aux_weight > 0 else -1
        bn = dict(affine=affine, bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend)
        with self.name_scope():
            self.stem = DartsStem(arch.in_channels, stem_multiplier * channels, stride=stem_stride, bn_eps=bn_eps,
                                  bn_momentum=bn_momentum, prefix="stem_")
            self.cells = nn.HybridSequential(prefix="")
            for p in self.plans:
                self.cells.add(DerivedCell(arch.cell(p.kind), p, prefix=f"cell{p.index}_", **bn))
            c_last = self._width(len(self.plans) - 1)
            self.classifier = (Classifier(c_last, num_classes, dropout, self.backend, prefix="classifier_")
                               if head is None else head(c_last, "classifier_"))
            self.aux_head = None
            if self.aux_at >= 0:
                c_aux = self._width(self.aux_at)
                self.aux_head = (aux_head(c_aux, "aux_") if aux_head is not None
                                 else AuxHead(c_aux, num_classes, 3, prefix="aux_", **bn))
        self.set_drop_path(drop_path)

    def _width(self, k: int) -> int:
        p = self.plans[k]
        return len(self.arch.cell(p.kind).concat) * p.channels

    def set_drop_path(self, drop_path: float) -> None:
        """Set the drop-path probability of every cell; clears the cached graph."""
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        for cell in self.cells:
            cell.drop_path = drop_path
        self.drop_path = drop_path
        self._clear_cached_op()

    def hybrid_forward(self, F, x):
        s0 = s1 = self.stem(x)
        aux = None
        for k, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if k == self.aux_at:
                aux = self.aux_head(s1)
        logits = self.classifier(s1)
        return logits if aux is None else (logits, aux)


def darts_cost(arch: DartsArchitecture, channels: int, layers: int, stem_multiplier: int,
               input_hw: Tuple[int, int], num_classes: int, *, stem_stride: int = 1, affine: bool = True,
               head_cost: Optional[HeadCost] = None) -> Dict[str, Any]:
    """Analytic cost of :class:`DartsNet` (the auxiliary head in ``aux``, not in ``total``,
    as DARTS counts its parameters): ``total``, ``stem``, ``blocks`` (one per cell),
    ``classifier``, ``aux``, ``widths`` (every cell's output width)."""
    plans = net_plans(arch, channels, layers, stem_multiplier)
    sizes = cell_input_sizes(plans, stem_output_hw(tuple(input_hw), stem_stride))
    stem = stem_cost(arch.in_channels, stem_multiplier * channels, input_hw[0], input_hw[1], stem_stride)
    blocks = [derived_cell_cost(arch.cell(p.kind), p, hw0, hw1, affine) for p, (hw0, hw1) in zip(plans, sizes)]
    widths = [len(arch.cell(p.kind).concat) * p.channels for p in plans]
    hl, wl = cell_output_hw(sizes[-1][1], plans[-1].reduction)
    classifier = (head_cost or (lambda c, h, w: classifier_cost(c, num_classes, h, w)))(widths[-1], hl, wl)
    k = aux_index(layers)
    ha, wa = cell_output_hw(sizes[k][1], plans[k].reduction)
    aux = aux_head_cost(widths[k], num_classes, ha, wa, 3, affine) if min(ha, wa) >= 8 else Cost.zero()
    total = stem + sum(blocks, Cost.zero()) + classifier
    return {"total": total, "stem": stem, "blocks": blocks, "classifier": classifier, "aux": aux,
            "widths": widths}
