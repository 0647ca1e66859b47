"""The mobile supernet (TPAMI §3.1, Eqs. 3-4): one level per block, every op on the block input.

A :class:`MixedBlock` holds the N candidate MBConv ops and its λ (``(N,)``, initialized to 1):
``output = Σ_i λ_i · op_i(x) (+ x where the block has its residual)``. The λ of a block all
reaching zero leaves the identity, ProxylessNAS's zero op; a block that changes the stride
or the width has no residual, so its last live op is spared the penalty (:meth:`MobileSuperNet.protected`).
Scope is always ``full`` (one λ per block).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import HybridBlock, nn

from ...models.heads import Classifier, HeadFactory
from ...ops import REFERENCE, OPS, Cost, check_backend, conv_out_size, sum_cost
from .arch import BlockPlan, Macro
from .net import MobileStem, MobileTail, stem_cost, tail_cost

__all__ = ["MixedBlock", "MobileSuperNet"]


class MixedBlock(HybridBlock):
    """N candidate ops on the block input, weighted by the block's λ (Eq. 3), plus the residual."""

    def __init__(self, plan: BlockPlan, ops: Sequence[str], affine: bool = False, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.plan, self.op_names, self.affine = plan, tuple(ops), affine
        with self.name_scope():
            self.lam = self.params.get("lambda", shape=(len(ops),), init=mx.init.One())
            self.ops = nn.HybridSequential(prefix="")
            for i, name in enumerate(ops):
                self.ops.add(OPS.get(name).build(plan.c_in, plan.stride, affine, bn_eps, bn_momentum,
                                                 c_out=plan.c_out, backend=backend, prefix=f"op{i}_"))

        self.kept: Tuple[int, ...] = tuple(range(len(self.op_names)))

    def drop_pruned(self, keep) -> bool:
        """Stop computing the ops whose λ is pruned for good (``keep`` False); their parameters get no
        gradient. A block without its residual keeps computing every op when all are pruned (the space
        spares its last op, so a prune never gets there). Whether the computation changed; hybridize again."""
        kept = tuple(int(i) for i in np.flatnonzero(np.asarray(keep, bool).reshape(-1)))
        if kept == self.kept or not (kept or self.plan.residual):
            return False
        self.kept = kept
        for i, op in enumerate(self.ops):
            if i not in kept:
                for param in op.collect_params().values():
                    param.grad_req = "null"
        return True

    def hybrid_forward(self, F, x, lam):
        terms = [F.broadcast_mul(self.ops[i](x), F.reshape(F.slice_axis(lam, axis=0, begin=i, end=i + 1), (1, 1, 1, 1)))
                 for i in self.kept]
        if not terms:  # every op pruned: the identity (λ kept in the graph with a zero gradient)
            return F.broadcast_add(x, F.reshape(F.sum(lam) * 0, (1, 1, 1, 1)))
        if self.plan.residual:
            terms.append(x)
        return F.add_n(*terms) if len(terms) > 1 else terms[0]

    def cost(self, height: int, width: int, mask: Optional[np.ndarray] = None) -> Cost:
        """Analytic cost of the ops ``mask`` keeps (all by default) and their sum."""
        keep = np.ones(len(self.op_names), bool) if mask is None else np.asarray(mask, bool).reshape(-1)
        total = sum((OPS.get(n).cost(self.plan.c_in, height, width, self.plan.stride, self.affine,
                                     c_out=self.plan.c_out) for n, k in zip(self.op_names, keep) if k), Cost.zero())
        h, w = conv_out_size(height, 3, self.plan.stride), conv_out_size(width, 3, self.plan.stride)
        return total + sum_cost(int(keep.sum()) + int(self.plan.residual), self.plan.c_out, h, w)


class MobileSuperNet(HybridBlock):
    """Stem, the mixed blocks of the macro, the last conv and the task's head.

    Parameters
    ----------
    macro : Macro
        Widths, depths and strides (``model.mobile.*``).
    ops : sequence of str
        The N candidate ops of every block (``model.ops``).
    num_classes : int
        Outputs of the default classifier.
    affine : bool
        Learnable BN γ (false while pre-training and searching, §4.1).
    head : callable, optional
        The task's head on the last feature map.
    """

    def __init__(self, macro: Macro, ops: Sequence[str], num_classes: int, *, affine: bool = False,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE,
                 head: Optional[HeadFactory] = None, **kwargs):
        super().__init__(**kwargs)
        self.macro, self.op_names, self.affine = macro, tuple(ops), affine
        self.backend = check_backend(backend)
        self.scope = "full"
        bn = dict(affine=affine, bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(MobileStem(macro, prefix="stem_", **bn))
            for plan in macro.plan():
                self.features.add(MixedBlock(plan, ops, prefix=f"stage{plan.stage}_block{plan.index}_", **bn))
            self.features.add(MobileTail(macro.widths[-1], macro.last_conv, affine, bn_eps, bn_momentum,
                                         prefix="tail_"))
            self.classifier = (head(macro.last_conv, "classifier_") if head is not None else
                               Classifier(macro.last_conv, num_classes, 0.0, self.backend, prefix="classifier_"))

    def hybrid_forward(self, F, x):
        return self.classifier(self.features(x))

    def sequential_layers(self) -> List[HybridBlock]:
        """Stem, blocks, tail, head in order (mirror mode)."""
        return list(self.features) + [self.classifier]

    @property
    def _blocks(self) -> List[MixedBlock]:
        return [layer for layer in self.features if isinstance(layer, MixedBlock)]

    # -- parameter groups ----------------------------------------------------------------
    def lambda_params(self) -> List[gluon.Parameter]:
        """One λ Parameter per block, in network order."""
        return [b.lam for b in self._blocks]

    def weight_params(self) -> gluon.ParameterDict:
        """Every Parameter except the λ."""
        lam = {p.name for p in self.lambda_params()}
        out = gluon.ParameterDict(self.prefix)
        out.update({n: p for n, p in self.collect_params().items() if n not in lam})
        return out

    def search_blocks(self) -> List[MixedBlock]:
        return list(self._blocks)

    def block_lambda_index(self) -> List[int]:
        return list(range(len(self._blocks)))

    # -- shapes and costs ----------------------------------------------------------------
    def block_shapes(self, input_hw: Tuple[int, int]) -> List[Tuple[int, int, int]]:
        """``(C, H, W)`` of every block's input."""
        _, h, w = stem_cost(self.macro, *input_hw)
        out = []
        for b in self._blocks:
            out.append((b.plan.c_in, h, w))
            h, w = conv_out_size(h, 3, b.plan.stride), conv_out_size(w, 3, b.plan.stride)
        return out

    def cost(self, input_hw: Tuple[int, int], masks: Optional[Sequence[np.ndarray]] = None) -> Dict[str, object]:
        """Analytic cost, optionally of only the ops the λ masks keep: ``total``, ``blocks``,
        ``stem``, ``tail``, ``classifier``. λ are not counted."""
        if masks is not None and len(masks) != len(self._blocks):
            raise ValueError(f"expected {len(self._blocks)} λ masks, got {len(masks)}")
        stem, h, w = stem_cost(self.macro, *input_hw, affine=self.affine)
        blocks = []
        for i, b in enumerate(self._blocks):
            blocks.append(b.cost(h, w, None if masks is None else masks[i]))
            h, w = conv_out_size(h, 3, b.plan.stride), conv_out_size(w, 3, b.plan.stride)
        tail = tail_cost(self.macro.widths[-1], self.macro.last_conv, h, w, self.affine)
        head = self.classifier.cost(h, w) if hasattr(self.classifier, "cost") else Cost.zero()
        return {"total": stem + sum(blocks, Cost.zero()) + tail + head, "blocks": blocks, "stem": stem,
                "tail": tail, "classifier": head}

    def protected(self, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Per block, the λ entries the sparsity penalty must spare: the last live op of a block
        without residual (it cannot become the identity). Only the last one: sparing the leader
        earlier would hand it the block."""
        out = []
        for b, lam in zip(self._blocks, lambdas):
            live = np.asarray(lam, dtype=np.float64).reshape(-1) != 0
            out.append(live.copy() if (not b.plan.residual and live.sum() == 1) else np.zeros(live.shape, bool))
        return out
