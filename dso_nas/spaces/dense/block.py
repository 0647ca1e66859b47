"""One search block of the supernet (TPAMI Eqs. 1-2 and 8, ICLR Eqs. 3-4).

A block has M levels of N candidate operations (:mod:`dso_nas.spaces.dense.graph` gives the graph
and the flat λ layout). Level-1 operations read the block input directly; operation
``(i, j)`` with ``i >= 2`` reads ``Σ λ·h`` over the block input and every operation of the
levels before it; every operation reaches the output through its own λ. The output is

    O = ReLU(BN(Conv1x1(concat_k(λ_out[k]·h_k)))) + x        (reduction 𝓡 of Eq. 2)

with the identity shortcut that the paper keeps "in case all operations are pruned".

Two numerically equivalent formulations (``aggregation``):

* ``"per_edge"`` - the reference: each edge multiplies its feature map by its own scalar,
  the products are summed (``add_n``), and the λ-scaled outputs are concatenated.
* ``"fused"`` - the fast one: for each level the ``K = 1 + (i-1)N`` candidate inputs are
  stacked into a ``K x (B·C·H·W)`` matrix and the N weighted sums are one matrix product
  with the level's ``N x K`` λ matrix; the output λ are folded into the ``1 x 1`` reduction
  weights (``W' = W ⊙ repeat(λ_out, C)`` along the input channels), so no feature map is
  ever multiplied by an output λ. Per-edge ``broadcast_mul`` backward (a reduction to a
  scalar per edge) dominated the CPU step time of the authors' release; the product
  replaces it. It is computed in one of two forms (``backend``, as the operations are):

  - ``"reference"``: ``dot`` of the λ matrix with the 5-D stack ``(K, B, C, H, W)``, giving
    ``(N, B, C, H, W)``, split along the first axis (a BLAS GEMM);
  - ``"onednn"``: the inputs stacked on a new axis 1, ``(B, K, C, H, W)``, read as the NCHW map
    ``(B, K, C·H, W)`` (the K inputs are its channels; a free reshape), and the λ matrix
    as the weight of a ``1 x 1`` convolution with N filters, whose ``(B, N, C·H, W)``
    output is split along axis 1 and reshaped back to ``(B, C, H, W)`` in place (C is
    known; no ``reshape_like``, which copies). oneDNN's convolution, forward and
    backward, is about 3x faster than OpenBLAS's GEMMs of these shapes (a K x N matrix
    against ~10^6 columns: the λ gradient alone took 13 ms per level at K = 13 on the
    paper's first stage).

When every λ of a block is zero the supernet block computes ``x + ReLU(BN(0))``, i.e.
``x`` plus a per-channel constant (``ReLU(β)`` in training mode, ``ReLU(β - μ·γ/σ)`` with the
running statistics in inference mode) - not exactly the identity. The derived network
drops such a branch altogether and is then exactly the identity, which is what the paper's
"identity mapping in case all operations are pruned" describes.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, Parameter

from dso_nas.errors import ConfigError
from dso_nas.ops import REFERENCE, BNReLU, Cost, bn_cost, build_op, check_backend, check_ops, conv_cost, \
    op_cost, sum_cost
from dso_nas.spaces.dense.graph import LivePlan, level_slice, live_edges, live_ops, live_plan, \
    num_lambda, op_nodes, output_node, runs

__all__ = ["AGGREGATIONS", "SearchBlock", "block_cost"]

#: ``"ops_floor"`` is not a search: every op reads the block input, the outputs go straight
#: into the plain ``1 x 1`` reduction and λ is not used - the lower bound of any λ formulation's
#: step time, for ``make bench``.
AGGREGATIONS = ("fused", "per_edge", "ops_floor")


# ----------------------------------------------------------------------------- the block


class SearchBlock(HybridBlock):
    """A fully connected M-level, N-operation block with one λ per edge.

    Parameters
    ----------
    channels : int
        Width C of the block (input = output = every operation).
    levels : int
        M, the number of levels.
    ops : sequence of str
        The N operation names (keys of :data:`dso_nas.ops.OPS`).
    aggregation : {"fused", "per_edge"}
        How the λ-weighted sums are computed (same numbers, see the module docstring).
    lam : gluon.Parameter, optional
        A λ Parameter shared with other blocks (shape ``(num_lambda(M, N),)``). When
        ``None`` the block creates its own, named ``<prefix>lambda`` and initialized to 1.
    affine : bool
        BN with a learnable γ; the supernet uses ``False`` (γ fixed to 1) for pre-training
        and search.
    bn_eps, bn_momentum : float
        BatchNorm settings.
    backend : {"onednn", "reference"}
        How the operations, the reduction's BN-ReLU and the fused sums are computed (same
        numbers; :mod:`dso_nas.ops.backends`).
    dilation : int
        Dilation of every op's spatial convolutions (the stages past the output stride); no
        cost changes.
    """

    def __init__(self, channels: int, levels: int, ops: Sequence[str], *,
                 aggregation: str = "fused", lam: Optional[Parameter] = None,
                 affine: bool = False, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        ops = tuple(ops)
        check_ops(ops)
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"unknown aggregation {aggregation!r}; valid: "
                              f"{', '.join(AGGREGATIONS)}")
        if levels < 1 or not ops:
            raise ConfigError(f"a search block needs levels >= 1 and at least one op, got "
                              f"levels={levels}, ops={list(ops)}")
        self.channels, self.levels, self.ops, self.n_ops = channels, levels, ops, len(ops)
        self.aggregation, self.affine, self.backend = aggregation, affine, check_backend(backend)
        self.n_lambda = num_lambda(levels, self.n_ops)
        with self.name_scope():
            if lam is None:
                self.lam = self.params.get("lambda", shape=(self.n_lambda,),
                                           init=mx.init.One())
            else:
                if tuple(lam.shape) != (self.n_lambda,):
                    raise ValueError(f"shared λ has shape {lam.shape}, this block needs "
                                     f"({self.n_lambda},)")
                self.lam = lam
                self.params.update({lam.name: lam})
            self.reduce_weight = self.params.get(
                "reduce_weight", shape=(channels, levels * self.n_ops * channels, 1, 1))
            self.reduce_bn = BNReLU(channels, affine, bn_eps, bn_momentum, self.backend,
                                    prefix="reduce_bn_")
            self._op_blocks = []
            for level, j in op_nodes(levels, self.n_ops):
                block = build_op(ops[j], channels, 1, affine, bn_eps, bn_momentum,
                                 prefix=f"l{level}_{j}_{ops[j]}_", backend=self.backend, dilation=dilation)
                self.register_child(block, f"l{level}_{j}")
                self._op_blocks.append(block)
        self.plan: Optional[LivePlan] = None

    def drop_pruned(self, keep) -> bool:
        """Leave out of the computation what the λ outside ``keep`` no longer reach, for good.

        The ops that are dead under ``keep`` (:func:`~dso_nas.spaces.dense.graph.live_ops`) are no
        longer computed and their parameters get no gradient (``grad_req = "null"``); each
        level's λ-weighted sums read only the nodes joined by a kept edge, and the ``1 x 1``
        reduction only the outputs whose λ is kept. The numbers equal the whole block's when
        the λ outside ``keep`` are zero and ``keep`` is closed under the dead-op rule (a prune's
        mask). Hybridize again afterwards: the cached graph is the old one.

        Parameters
        ----------
        keep : array-like of bool
            ``True`` for the λ not pruned, flat order.

        Returns
        -------
        bool
            Whether the computation changed.
        """
        keep = np.asarray(keep, dtype=bool).reshape(-1)
        plan = None if keep.all() else live_plan(keep, self.levels, self.n_ops)
        if plan == self.plan:
            return False
        self.plan = plan
        if plan is not None:
            computed = {(1, j) for j in plan.first} | {(lv.level, j) for lv in plan.levels for j in lv.rows}
            for node, block in zip(op_nodes(self.levels, self.n_ops), self._op_blocks):
                if node not in computed:
                    for param in block.collect_params().values():
                        param.grad_req = "null"
        return True

    # -- forward ---------------------------------------------------------------------------

    def _level_ops(self, level: int):
        start = (level - 1) * self.n_ops
        return self._op_blocks[start:start + self.n_ops]

    def hybrid_forward(self, F, x, lam, reduce_weight):
        if self.aggregation == "ops_floor":
            merged = F.concat(*[op(x) for op in self._op_blocks], dim=1)
            y = F.Convolution(merged, weight=reduce_weight, kernel=(1, 1), num_filter=self.channels,
                              no_bias=True)
            return self.reduce_bn(y) + x
        fused = self.aggregation == "fused"
        if self.plan is not None:
            return self._pruned_forward(F, x, lam, reduce_weight, fused)
        outs = [op(x) for op in self._level_ops(1)]
        for level in range(2, self.levels + 1):
            start, stop = level_slice(self.levels, self.n_ops, level)
            lam_level = F.slice_axis(lam, axis=0, begin=start, end=stop)
            sources = [x] + outs
            if fused:
                inputs = _fused_sums(F, lam_level, sources, self.n_ops, self.channels, self.backend)
            else:
                inputs = _per_edge_sums(F, lam_level, sources, self.n_ops)
            outs.extend(op(inp) for op, inp in zip(self._level_ops(level), inputs))
        start, stop = level_slice(self.levels, self.n_ops, self.levels + 1)
        lam_out = F.slice_axis(lam, axis=0, begin=start, end=stop)
        if fused:
            weight = _fold_output_lambda(F, reduce_weight, lam_out, self.channels)
            merged = F.concat(*outs, dim=1)
        else:
            weight = reduce_weight
            merged = F.concat(*[_scale(F, h, lam_out, k) for k, h in enumerate(outs)], dim=1)
        y = F.Convolution(merged, weight=weight, kernel=(1, 1), num_filter=self.channels,
                          no_bias=True)
        return self.reduce_bn(y) + x

    def _pruned_forward(self, F, x, lam, reduce_weight, fused: bool):
        """The forward pass of :meth:`drop_pruned`'s plan: live ops and kept edges only."""
        plan, n = self.plan, self.n_ops
        outs = {j: self._op_blocks[j](x) for j in plan.first}  # by flat op position
        for lv in plan.levels:
            start, _ = level_slice(self.levels, n, lv.level)
            k = 1 + (lv.level - 1) * n
            sources = [x if s == 0 else outs[s - 1] for s in lv.sources]
            if fused:
                index = [start + j * k + s for j in lv.rows for s in lv.sources]
                inputs = _fused_sums(F, _gather(F, lam, index), sources, len(lv.rows), self.channels,
                                     self.backend)
            else:
                lam_level = F.slice_axis(lam, axis=0, begin=start, end=start + n * k)
                inputs = [F.add_n(*[_scale(F, h, lam_level, j * k + s) for s, h in zip(lv.sources, sources)])
                          if len(sources) > 1 else _scale(F, sources[0], lam_level, j * k + lv.sources[0])
                          for j in lv.rows]
            for j, inp in zip(lv.rows, inputs):
                position = (lv.level - 1) * n + j
                outs[position] = self._op_blocks[position](inp)
        if not plan.outputs:  # every output edge pruned: the block adds ReLU(BN(0)) to x, as the whole one;
            # λ and the weight stay in the graph with a zero gradient (an unused input breaks the backward pass)
            zero = F.reshape(F.sum(lam) * 0 + F.sum(reduce_weight) * 0, shape=(1, 1, 1, 1))
            return self.reduce_bn(F.broadcast_mul(x, zero)) + x
        start, _ = level_slice(self.levels, n, self.levels + 1)
        c = self.channels
        weight = _gather(F, reduce_weight, [p * c + i for p in plan.outputs for i in range(c)], axis=1)
        if fused:
            weight = _fold_output_lambda(F, weight, _gather(F, lam, [start + p for p in plan.outputs]), c)
            merged = F.concat(*[outs[p] for p in plan.outputs], dim=1)
        else:
            lam_out = F.slice_axis(lam, axis=0, begin=start, end=start + self.levels * n)
            merged = F.concat(*[_scale(F, outs[p], lam_out, p) for p in plan.outputs], dim=1)
        y = F.Convolution(merged, weight=weight, kernel=(1, 1), num_filter=c, no_bias=True)
        return self.reduce_bn(y) + x

    # -- analytic helpers ------------------------------------------------------------------

    def out_shape(self, height: int, width: int) -> Tuple[int, int, int]:
        """``(C, H, W)`` of the output (the same as the input)."""
        return self.channels, height, width

    def cost(self, height: int, width: int, mask=None) -> Cost:
        """Analytic cost of the block keeping only what ``mask`` leaves alive.

        Parameters
        ----------
        height, width : int
            Spatial size of the input.
        mask : array-like of bool, optional
            ``True`` for kept λ (flat order); ``None`` keeps everything (the supernet).

        Returns
        -------
        Cost
            Kept operations, the sums feeding them, the ``1 x 1`` reduction over the kept
            outputs with its BN, and the residual sum. Nothing (zero cost) when no
            operation survives: the block is then the identity. λ are not counted.
        """
        if mask is None:
            mask = np.ones(self.n_lambda, dtype=bool)
        return block_cost(self.channels, self.levels, self.ops, height, width, mask,
                          self.affine)


def block_cost(channels: int, levels: int, ops: Sequence[str], height: int, width: int,
               mask, affine: bool = True) -> Cost:
    """Analytic cost of a search block under a λ mask (see :meth:`SearchBlock.cost`)."""
    n_ops = len(ops)
    kept = live_edges(mask, levels, n_ops)
    alive = live_ops(mask, levels, n_ops)
    out = output_node(levels)
    total = Cost.zero()
    for level, j in sorted(alive):
        fan_in = 1 if level == 1 else sum(1 for _, dst in kept if dst == (level, j))
        total = (total + sum_cost(fan_in, channels, height, width)
                 + op_cost(ops[j], channels, height, width, 1, affine))
    n_out = sum(1 for _, dst in kept if dst == out)
    if n_out:
        total = (total + conv_cost(n_out * channels, channels, 1, height, width)
                 + bn_cost(channels, affine=affine) + sum_cost(2, channels, height, width))
    return total


# ----------------------------------------------------------------------------- formulations


def _gather(F, array, index, axis: int = 0):
    """``array`` at the sorted positions ``index`` along ``axis``: one slice per run of
    consecutive positions, concatenated (no index array is needed in the graph)."""
    parts = [F.slice_axis(array, axis=axis, begin=a, end=b) for a, b in runs(index)]
    return parts[0] if len(parts) == 1 else F.concat(*parts, dim=axis)


def _scale(F, h, lam, k: int):
    """``λ[k] · h`` with a per-edge broadcast multiply (the reference formulation)."""
    factor = F.reshape(F.slice_axis(lam, axis=0, begin=k, end=k + 1), shape=(1, 1, 1, 1))
    return F.broadcast_mul(h, factor)


def _per_edge_sums(F, lam_level, sources, n_ops: int):
    """The N inputs of a level: ``add_n`` of per-edge scaled sources."""
    k = len(sources)
    inputs = []
    for j in range(n_ops):
        terms = [_scale(F, h, lam_level, j * k + s) for s, h in enumerate(sources)]
        inputs.append(terms[0] if k == 1 else F.add_n(*terms))
    return inputs


def _fused_sums(F, lam_level, sources, n_ops: int, channels: int, backend: str = "onednn"):
    """The N inputs of a level as one product ``(N x K) · (K x B x C x H x W)``.

    ``"reference"``: ``dot`` of the 2-D λ matrix with the 5-D stack gives ``(N, B, C, H, W)``
    directly, and ``split(squeeze_axis=True)`` hands out the N maps. ``"onednn"``: a ``1 x 1``
    convolution of the ``(B, K, C·H, W)`` stack with the λ matrix as its ``(N, K, 1, 1)``
    weight, then split along axis 1; every reshape is in place.
    """
    k = len(sources)
    if backend == REFERENCE:
        sums = F.dot(F.reshape(lam_level, shape=(n_ops, k)), F.stack(*sources, axis=0))
        if n_ops == 1:
            return [F.reshape(sums, shape=(-3, -2))]
        return list(F.split(sums, num_outputs=n_ops, axis=0, squeeze_axis=True))
    stacked = F.reshape(F.stack(*sources, axis=1), shape=(0, 0, -3, 0))
    weight = F.reshape(lam_level, shape=(n_ops, k, 1, 1))
    sums = F.Convolution(stacked, weight=weight, kernel=(1, 1), num_filter=n_ops, no_bias=True)
    if n_ops == 1:
        parts = [F.reshape(sums, shape=(0, -3, 0))]                       # (B, C·H, W)
    else:
        parts = F.split(sums, num_outputs=n_ops, axis=1, squeeze_axis=True)
    return [F.reshape(s, shape=(0, -4, channels, -1, 0)) for s in parts]


def _fold_output_lambda(F, reduce_weight, lam_out, channels: int):
    """``W ⊙ repeat(λ_out, C)`` along the input channels of the ``1 x 1`` reduction.

    The per-column scale is broadcast over the ``C_out`` rows with an outer product
    (``ones(C_out, 1) · scale``) rather than ``broadcast_mul``, whose backward (a generic
    broadcast reduction) cost more than the reduction convolution itself on CPU.
    """
    scale = F.reshape(F.repeat(lam_out, repeats=channels), shape=(1, -1))
    column = F.slice(reduce_weight, begin=(0, 0, 0, 0), end=(None, 1, 1, 1))
    ones = F.BlockGrad(F.ones_like(F.reshape(column, shape=(0, -1))))
    return reduce_weight * F.reshape(F.dot(ones, scale), shape=(0, 0, 1, 1))
