"""The derived (retraining) network built from an :class:`~dso_nas.spaces.dense.arch.Architecture`.

A :class:`DerivedCell` keeps only the ops and edges of its :class:`~dso_nas.spaces.dense.cell.Cell`,
built from the same op table as the supernet (:func:`dso_nas.ops.build_op`); λ are
gone (TPAMI §4.1: the final architecture is retrained from scratch). Each kept op sums its
kept inputs, the kept output nodes are concatenated and reduced by ``1 x 1`` conv -> BN ->
ReLU, and the shortcut is added (Eq. 2). A cell with no kept op is exactly the identity.

:class:`DerivedNet` is stem -> stages of derived cells -> a reduction block after every
stage but the last -> final BN + ReLU (the release's ``final_bn``, ``final_relu``) ->
classifier (TPAMI Fig. 2), every width scaled by a global width multiplier (§4.1). Retraining
extras of §4.2: dropout before the classifier, drop path and an auxiliary head.

Drop path (as in the authors' release) multiplies, per sample, each branch by a Bernoulli
keep mask scaled by ``1/(1-p)``: the inputs of every op that sums more than one input and
every branch entering the output concatenation. Block ``b`` (0-based, network order, of
``B`` normal blocks) uses ``p_b = p·(b+1)/B``. It is ``Dropout`` with ``axes=(1, 2, 3)``
(one draw per sample), so it is active in training mode only and hybridizes.
:meth:`DerivedNet.set_drop_path` changes ``p`` between epochs (e.g. a linear ramp).

Channel rounding: a width ``c`` becomes the multiple of ``width_divisor`` nearest to ``c·m``
(at least one multiple), for the stem and for every stage independently
(:func:`scaled_width`); ``width_divisor=1`` is plain rounding to the nearest integer. The
pipeline uses ``retrain.width_divisor`` (8): oneDNN's blocked layouts on AVX2 (and GPU tensor
cores) want channel counts that are multiples of 8 (BENCHMARKS.md, ``small_derived``).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

from mxnet.gluon import HybridBlock, nn

from dso_nas.errors import ArchitectureError
from dso_nas.models.common import (ConvBNReLU, ReductionBlock, Stem, conv_bn_relu_cost, reduction_cost,
                                   reduction_plan, stem_cost, stem_out_shape, stem_stride)
from dso_nas.models.heads import AuxHead, Classifier, HeadCost, HeadFactory, classifier_cost
from dso_nas.ops import REFERENCE, BNReLU, Cost, bn_cost, build_op, check_backend, conv_out_size
from dso_nas.spaces.dense.arch import Architecture
from dso_nas.spaces.dense.block import block_cost
from dso_nas.spaces.dense.cell import Cell

__all__ = ["SHORTCUTS", "scaled_width", "network_widths", "DerivedCell", "derived_cell_cost",
           "DerivedNet", "arch_cost", "default_aux_stage", "aux_pool_stride"]

SHORTCUTS = ("identity", "conv")


def scaled_width(channels: int, width_mult: float, divisor: int = 1) -> int:
    """``channels·width_mult`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``);
    non-decreasing in ``width_mult``."""
    return divisor * max(1, int(math.floor(channels * width_mult / divisor + 0.5)))


def network_widths(arch: Architecture, width_mult: float, divisor: int = 1) -> Tuple[int, List[int]]:
    """``(stem width, [stage widths])`` of the derived network at ``width_mult``."""
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    if divisor < 1:
        raise ValueError(f"width divisor must be >= 1, got {divisor}")
    return (scaled_width(arch.stem_channels, width_mult, divisor),
            [scaled_width(c, width_mult, divisor) for c in arch.channels])


def _drop(F, x, p: float):
    """Per-sample drop path: the whole map of a sample is zeroed with probability ``p``."""
    return F.Dropout(x, p=p, axes=(1, 2, 3)) if p > 0 else x


# ----------------------------------------------------------------------------- cell


class DerivedCell(HybridBlock):
    """One derived normal block.

    Parameters
    ----------
    cell : Cell
        The kept ops and edges.
    channels : int
        Width C (input = output = every op).
    drop_path : float
        Drop-path probability of this block's branches (training only).
    shortcut : {"identity", "conv"}
        Residual branch: the identity (paper) or a ``1 x 1`` conv -> BN -> ReLU (the
        release's choice for the first block of each stage). With ``"conv"`` an empty
        cell computes the shortcut alone.
    affine, bn_eps, bn_momentum
        BatchNorm settings.
    backend : {"onednn", "reference"}
        Op form of every layer.
    dilation : int
        Dilation of the ops' spatial convolutions (past the output stride; no cost change).
    """

    def __init__(self, cell: Cell, channels: int, *, drop_path: float = 0.0,
                 shortcut: str = "identity", affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, backend: str = REFERENCE, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        self.cell, self.channels, self.drop_path, self.shortcut = cell, channels, drop_path, shortcut
        self.affine, self.backend = affine, check_backend(backend)
        self._ops: List[Tuple[str, HybridBlock, Tuple[str, ...]]] = []
        with self.name_scope():
            for k in cell.ops:
                tag = f"op{k.level}_{k.index}"
                block = build_op(k.op, channels, 1, affine, bn_eps, bn_momentum, prefix=f"{tag}_",
                                 backend=self.backend, dilation=dilation)
                self.register_child(block, tag)
                self._ops.append((k.node, block, k.inputs))
            if cell.ops:
                n_out = len(cell.output_nodes)
                self.reduce = nn.Conv2D(channels, 1, use_bias=False, in_channels=n_out * channels,
                                        prefix="reduce_")
                self.reduce_bn = BNReLU(channels, affine, bn_eps, bn_momentum, self.backend, prefix="reduce_bn_")
            self.proj = None
            if shortcut == "conv":
                self.proj = ConvBNReLU(channels, channels, 1, 1, affine, bn_eps, bn_momentum,
                                       self.backend, prefix="shortcut_")

    def hybrid_forward(self, F, x):
        skip = self.proj(x) if self.proj is not None else x
        if not self._ops:
            return skip
        p = self.drop_path
        nodes = {"in": x}
        for node, block, inputs in self._ops:
            if len(inputs) == 1:
                total = nodes[inputs[0]]
            else:
                total = F.add_n(*[_drop(F, nodes[name], p) for name in inputs])
            nodes[node] = block(total)
        outs = [_drop(F, nodes[name], p) for name in self.cell.output_nodes]
        merged = F.concat(*outs, dim=1) if len(outs) > 1 else outs[0]
        return self.reduce_bn(self.reduce(merged)) + skip

    def cost(self, height: int, width: int, levels: int, ops) -> Cost:
        """Analytic cost for an input of ``height x width`` (see :func:`derived_cell_cost`)."""
        return derived_cell_cost(self.cell, self.channels, levels, ops, height, width,
                                 self.shortcut, self.affine)


def derived_cell_cost(cell: Cell, channels: int, levels: int, ops, height: int, width: int,
                      shortcut: str = "identity", affine: bool = True) -> Cost:
    """Analytic cost of a :class:`DerivedCell`.

    The same count as the supernet block under the cell's mask
    (:func:`dso_nas.spaces.dense.block.block_cost`: kept ops, their input sums, the
    ``1 x 1`` reduction with its BN, the residual sum), plus the conv shortcut if any.
    """
    total = block_cost(channels, levels, ops, height, width, cell.mask(levels, len(ops)), affine)
    if shortcut == "conv":
        total = total + conv_bn_relu_cost(channels, channels, 1, height, width, 1, affine)
    return total


# ----------------------------------------------------------------------------- aux head


def default_aux_stage(stem: str) -> int:
    """1-based stage after whose reduction block the aux head sits (release: 2 CIFAR, 3 ImageNet)."""
    return 3 if stem == "imagenet" else 2


def aux_pool_stride(stem: str) -> int:
    """Stride of the auxiliary head's 5 x 5 pooling (release: 3 CIFAR, 2 ImageNet)."""
    return 2 if stem == "imagenet" else 3


# ----------------------------------------------------------------------------- network


class DerivedNet(HybridBlock):
    """The retraining network of an architecture: a backbone of stages, then the heads.

    :meth:`features` gives the feature map after every stage (after its reduction block,
    for all stages but the last; after the final BN + ReLU for the last), with
    :attr:`output_strides`; the head (the task's; default
    a :class:`~dso_nas.models.heads.Classifier`) reads the last one, the auxiliary head the
    one after stage ``aux_stage``.

    Parameters
    ----------
    arch : Architecture
        Layout and cells.
    width_mult : float
        Global width multiplier applied to the stem and every stage width.
    num_classes : int
        Outputs of the default classifier and of the auxiliary head.
    dropout : float
        Dropout before the default classifier (paper CIFAR: 0.6).
    drop_path : float
        Maximal drop-path probability (last block); block ``b`` uses ``p·(b+1)/B``.
    aux_weight : float
        > 0 adds the auxiliary head; the forward then always returns
        ``(logits, aux_logits)`` (in inference too: the caller ignores the second output),
        so that one hybridized graph serves both modes. The weight itself belongs to the loss.
    aux_stage : int, optional
        1-based stage after whose reduction block (or after whose last block, for the last
        stage) the head reads; default :func:`default_aux_stage`, capped at the last stage.
    first_shortcut : {"identity", "conv"}
        Shortcut of the first block of each stage (``"conv"``: the release's 1x1 conv-BN-ReLU).
    affine, bn_eps, bn_momentum
        BatchNorm settings.
    backend : {"onednn", "reference"}
        Op form of every layer.
    width_divisor : int
        Every scaled width is a multiple of it (:func:`scaled_width`).
    head : callable, optional
        ``(in_channels, prefix) -> HybridBlock``: the task's head on the last feature map.
    aux_head : callable, optional
        ``(in_channels, prefix) -> HybridBlock``: the task's auxiliary head (default the
        classification :class:`~dso_nas.models.heads.AuxHead`).
    output_stride : int
        0: every reduction strided; else DeepLabv3's atrous layout
        (:func:`~dso_nas.models.common.reduction_plan`).
    final_bn : bool
        BatchNorm + ReLU on the last stage's output (the release's ``final_bn``).
    """

    def __init__(self, arch: Architecture, *, width_mult: float = 1.0, num_classes: int,
                 dropout: float = 0.0, drop_path: float = 0.0, aux_weight: float = 0.0,
                 aux_stage: Optional[int] = None, first_shortcut: str = "identity",
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, width_divisor: int = 1, head: Optional[HeadFactory] = None,
                 aux_head: Optional[HeadFactory] = None, output_stride: int = 0, final_bn: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.arch, self.width_mult, self.num_classes = arch, width_mult, num_classes
        self.first_shortcut, self.backend = first_shortcut, check_backend(backend)
        stem_c, widths = network_widths(arch, width_mult, width_divisor)
        if stem_c != widths[0]:
            raise ArchitectureError(f"stem_channels ({arch.stem_channels}) must equal the first stage width "
                                    f"channels[0] ({arch.channels[0]}): the first block maps C to C channels")
        self.widths = widths
        n_stages = len(widths)
        default_stage = min(default_aux_stage(arch.stem), n_stages)
        self.aux_stage = (aux_stage or default_stage) if aux_weight > 0 else 0
        if self.aux_stage and not 1 <= self.aux_stage <= n_stages:
            raise ValueError(f"aux_stage must be in [1, {n_stages}], got {self.aux_stage}")
        plan = reduction_plan(arch.stem, n_stages - 1, output_stride)
        strides = [stem_stride(arch.stem)]
        for stride, _, _ in plan:
            strides.append(strides[-1] * stride)
        #: Output stride of every stage's feature map (input side / map side).
        self.output_strides = strides[1:] + strides[-1:]
        bn = dict(affine=affine, bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend)
        cells = arch.block_cells()
        with self.name_scope():
            self.stem = Stem(arch.stem, arch.in_channels, stem_c, prefix="stem_", **bn)
            self.stages = nn.HybridSequential(prefix="")
            self.reductions = nn.HybridSequential(prefix="")
            b, dilation = 0, 1
            for s, (c, n_blocks) in enumerate(zip(widths, arch.blocks)):
                stage = nn.HybridSequential(prefix=f"stage{s + 1}_")
                with stage.name_scope():
                    for j in range(n_blocks):
                        stage.add(DerivedCell(cells[b], c, drop_path=0.0, prefix=f"block{j}_", dilation=dilation,
                                              shortcut=first_shortcut if j == 0 else "identity", **bn))
                        b += 1
                self.stages.add(stage)
                if s + 1 < n_stages:
                    stride, dil, dilation = plan[s]
                    self.reductions.add(ReductionBlock(c, widths[s + 1], stride=stride, dilation=dil,
                                                       prefix=f"reduce{s + 1}_", **bn))
            self.final = BNReLU(widths[-1], prefix="final_bn_", **bn) if final_bn else None
            if head is None:
                self.classifier = Classifier(widths[-1], num_classes, dropout, self.backend, prefix="classifier_")
            else:
                self.classifier = head(widths[-1], "classifier_")
            self.aux_head = None
            if self.aux_stage and aux_head is not None:
                self.aux_head = aux_head(self._aux_channels(), "aux_")
            elif self.aux_stage:
                self.aux_head = AuxHead(self._aux_channels(), num_classes, aux_pool_stride(arch.stem),
                                        prefix="aux_", **bn)
        self.set_drop_path(drop_path)

    def _aux_channels(self) -> int:
        s = self.aux_stage
        return self.widths[s] if s < len(self.widths) else self.widths[-1]

    def cells(self) -> List[DerivedCell]:
        """Every derived cell in network order."""
        return [cell for stage in self.stages for cell in stage]

    def set_drop_path(self, drop_path: float) -> None:
        """Set the maximal drop-path probability (block ``b`` gets ``p·(b+1)/B``).

        Clears the cached graph so that the next call re-traces with the new rates.
        """
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        cells = self.cells()
        for b, cell in enumerate(cells):
            cell.drop_path = drop_path * (b + 1) / len(cells)
        self.drop_path = drop_path
        self._clear_cached_op()

    def features(self, F, x) -> List[Any]:
        """The feature map after every stage (and its reduction block), input to output."""
        x = self.stem(x)
        maps = []
        n_stages = len(self.stages)
        for s in range(n_stages):
            x = self.stages[s](x)
            if s + 1 < n_stages:
                x = self.reductions[s](x)
            elif self.final is not None:
                x = self.final(x)
            maps.append(x)
        return maps

    def hybrid_forward(self, F, x):
        maps = self.features(F, x)
        logits = self.classifier(maps[-1])
        if self.aux_head is None:
            return logits
        return logits, self.aux_head(maps[self.aux_stage - 1])


def arch_cost(arch: Architecture, width_mult: float, input_hw: Tuple[int, int], num_classes: int,
              *, first_shortcut: str = "identity", affine: bool = True, width_divisor: int = 1,
              head_cost: Optional[HeadCost] = None, output_stride: int = 0,
              final_bn: bool = True) -> Dict[str, Any]:
    """Analytic cost of the :class:`DerivedNet` of ``arch`` (the auxiliary head excluded).

    Parameters
    ----------
    arch : Architecture
    width_mult : float
    input_hw : (int, int)
        Input image height and width.
    num_classes : int
    first_shortcut, affine, width_divisor
        As for :class:`DerivedNet`.
    head_cost : callable, optional
        ``(channels, height, width) -> Cost`` of the task's head on the last map; default the
        classifier's (:func:`~dso_nas.models.heads.classifier_cost`).
    output_stride : int
        As for :class:`DerivedNet` (dilation changes no cost; a stride-1 reduction keeps the map).
    final_bn : bool
        As for :class:`DerivedNet`.

    Returns
    -------
    dict
        ``total`` (:class:`~dso_nas.ops.Cost`), its parts ``stem``, ``blocks`` (one
        Cost per normal block, network order; zero for an identity block), ``reductions``,
        ``final`` (the final BN; zero without it) and ``classifier``, and ``widths`` (stem width, then every stage width) and
        ``width_mult``.
    """
    stem_c, widths = network_widths(arch, width_mult, width_divisor)
    stem = stem_cost(arch.stem, arch.in_channels, stem_c, input_hw[0], input_hw[1], affine)
    _, h, w = stem_out_shape(arch.stem, arch.in_channels, stem_c, input_hw[0], input_hw[1])
    cells = iter(arch.block_cells())
    blocks: List[Cost] = []
    reductions: List[Cost] = []
    plan = reduction_plan(arch.stem, len(widths) - 1, output_stride)
    for s, (c, n_blocks) in enumerate(zip(widths, arch.blocks)):
        for j in range(n_blocks):
            shortcut = first_shortcut if j == 0 else "identity"
            blocks.append(derived_cell_cost(next(cells), c, arch.levels, arch.ops, h, w, shortcut, affine))
        if s + 1 < len(widths):
            stride, dil, _ = plan[s]
            reductions.append(reduction_cost(c, widths[s + 1], h, w, affine, stride, dil))
            h, w = conv_out_size(h, 3, stride, dilation=dil), conv_out_size(w, 3, stride, dilation=dil)
    final = bn_cost(widths[-1], affine=affine) if final_bn else Cost.zero()
    classifier = (head_cost or (lambda c, hh, ww: classifier_cost(c, num_classes, hh, ww)))(widths[-1], h, w)
    total = stem + sum(blocks, Cost.zero()) + sum(reductions, Cost.zero()) + final + classifier
    return {"total": total, "stem": stem, "blocks": blocks, "reductions": reductions, "final": final,
            "classifier": classifier, "widths": [stem_c] + widths, "width_mult": width_mult}
