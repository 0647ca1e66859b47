"""NASP (Yao et al., "Differentiable Neural Architecture Search via Proximal Iterations",
AAAI 2020; ``../shared/papers/nasp-proximal-iterations.txt``) on the DARTS space.

Continuous α per (edge, op), starting at 0.5. A round (Algorithm 1, as the authors' code
``xujinfan/NASP-codes`` runs it):

1. ``ᾱ = prox_C1(α)``: per edge a one at its largest α, zeros elsewhere; per node only the two
   edges whose largest α is largest keep their one (:func:`binarize`);
2. the validation loss at ᾱ, every op of every edge computed (ᾱ weighs them; the code's
   ``"alphas"`` pass), its gradient with respect to ᾱ applied to the continuous α by Adam
   (plus the gradient of the optional R(A) = η Σ_i (p_i / Σp)·‖ā_i‖² on the normal cell's
   entries), then ``α = prox_C2(α)``: clipped to [0, 1];
3. ``ᾱ`` again, and one SGD step of the weights on a training batch through the selected op of
   each selected edge only (a twin network on the same Parameters whose graph holds just those
   ops; rebuilt when the selection changes). The other ops' weights are not updated.

The cells are the code's ``genotype()``: DARTS' rule on the softmax of α.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon

from ...engine.distributed import Distributed
from ...engine.loops import SearchSteps, mark_stale, train_step
from ...ops import darts_op
from ...errors import ConfigError
from .darts import SoftmaxRuleMethod, adam_trainer

__all__ = ["NaspMethod", "NaspSteps", "binarize", "size_burden"]

#: The channels NASP's per-op parameter counts (its ``PARAMS``) are taken at: conv weights, no BN affine.
BURDEN_CHANNELS = 12


def binarize(alpha: np.ndarray, steps: int, n_ops: int) -> np.ndarray:
    """``prox_C1``: the discrete ᾱ of a cell kind's α (flat, edge-major; 0 and 1).

    Per edge a one at its largest entry (the first on a tie); per node ``j`` (edges ``2 + i``
    of them, in input order) the two edges whose largest entry is largest keep it (the earlier
    edge on a tie), the others are all zero.
    """
    a = np.asarray(alpha, np.float64).reshape(-1, n_ops)
    out = np.zeros_like(a)
    start = 0
    for node in range(steps):
        width = 2 + node
        block = a[start:start + width]
        best = block.argmax(axis=1)
        top = block[np.arange(width), best]
        for e in np.argsort(-top, kind="stable")[:2]:
            out[start + e, best[e]] = 1.0
        start += width
    return out.reshape(-1)


def size_burden(ops: Sequence[str]) -> np.ndarray:
    """Per op, its share of the op set's parameters (NASP's ``PARAMS[op] / Σ PARAMS``)."""
    params = np.array([darts_op(o).cost(BURDEN_CHANNELS, 8, 8, 1, affine=False).params for o in ops], np.float64)
    return params / max(params.sum(), 1.0)


class NaspSteps(SearchSteps):
    """NASP's round: the α step at ᾱ through every op, the weight step at ᾱ through the selected ops."""

    def __init__(self, net: Any, twin: Any, w_trainer: gluon.Trainer, arch_trainer: gluon.Trainer, *, task: Any,
                 ctxs: Sequence[Any], steps: int, ops: Sequence[Sequence[str]], eta: float, clip_norm: float,
                 rank: int = 0):
        super().__init__(net, w_trainer, arch_trainer, task=task, ctxs=ctxs, clip_norm=clip_norm)
        self.twin, self.n_steps, self.ops, self.eta, self.rank = twin, steps, [tuple(o) for o in ops], eta, rank
        self.burden = size_burden(self.ops[0])
        self.rebuilds = 0  # the twin's graph rebuilt for a new selection, since the last stats()

    # -- α and ᾱ -------------------------------------------------------------------------
    def _alpha(self) -> List[np.ndarray]:
        return [p.data().asnumpy() for p in self.net.lambda_params()]

    def _set(self, values: Sequence[np.ndarray]) -> None:
        for p, v in zip(self.net.lambda_params(), values):
            p.set_data(mx.nd.array(v, dtype=p.dtype))

    def _binary(self, alpha: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [binarize(a, self.n_steps, len(o)) for a, o in zip(alpha, self.ops)]

    def stats(self) -> Dict[str, Any]:
        """How often the selection changed (the twin's graph was rebuilt) since the last call."""
        out, self.rebuilds = {"selection_changes": self.rebuilds}, 0
        return out

    # -- the two steps -------------------------------------------------------------------
    def arch(self, data, label):
        alpha = self._alpha()
        bar = self._binary(alpha)
        self._set(bar)

        def restore_then_regularize(count: int) -> None:
            self._set(alpha)  # the gradient taken at ᾱ updates the continuous α
            if self.eta > 0 and self.rank == 0:
                normal = self.net.lambda_params()[0]
                reg = 2.0 * self.eta * np.tile(self.burden, len(bar[0]) // len(self.burden)) * bar[0]
                grad = normal.list_grad()[0]
                grad += mx.nd.array(count * reg, ctx=grad.context, dtype=grad.dtype)

        meter = train_step(self.net, self.arch_trainer, self.task, self.loss_fn, data, label, self.ctxs,
                           before_update=restore_then_regularize)
        self._set([np.clip(a, 0.0, 1.0) for a in self._alpha()])  # prox_C2
        return meter

    def weights(self, data, label):
        alpha = self._alpha()
        bar = self._binary(alpha)
        if self.twin.select([b != 0 for b in bar]):
            self.twin.hybridize(static_alloc=True)
            self.rebuilds += 1
        self._set(bar)
        mark_stale(self.w_trainer)  # the α step's backward wrote every weight's gradient: not this step's
        try:
            with warnings.catch_warnings():  # the unselected ops' Parameters are left out on purpose
                warnings.filterwarnings("ignore", message=r"Parameter .* is not used by any computation")
                return train_step(self.twin, self.w_trainer, self.task, self.loss_fn, data, label, self.ctxs,
                                  before_update=self.clip, ignore_stale_grad=True)
        finally:
            self._set(alpha)


class NaspMethod(SoftmaxRuleMethod):
    """NASP."""

    name = "nasp"
    title = "NASP"
    needs = ("linear", "selected")
    weight_optimizer = "sgd"
    mirror = False

    def check_config(self, cfg: Any, space: Any, fitting: Sequence[str]) -> None:
        """Also: no ``none`` among the ops (NASP's spaces have none; at α = 0.5 the first op wins
        every edge, and a selected ``none`` trains nothing)."""
        super().check_config(cfg, space, fitting)
        for ops in space.cell_ops(cfg):
            if "none" in ops:
                raise ConfigError("search.method=nasp searches ops without 'none' (NASP's 7 or 12): drop it from "
                                  "model.darts.normal_ops / reduce_ops (experiments/darts/nasp7_ops.yaml)")

    def init_arch(self, net: Any, cfg: Any) -> None:
        """0.5 everywhere (the code's ``torch.ones(k, num_ops) / 2``)."""
        for p in net.lambda_params():
            p.set_data(mx.nd.full(p.shape, 0.5))

    def arch_trainer(self, net: Any, cfg: Any, dist: Distributed) -> gluon.Trainer:
        return adam_trainer(net, cfg, dist)

    def steps(self, net: Any, w_trainer: gluon.Trainer, arch_trainer: gluon.Trainer, *, cfg: Any, task: Any,
              ctxs: Sequence[Any], executors: Optional[Sequence] = None, rank: int = 0) -> NaspSteps:
        twin = net.twin()
        twin.hybridize(static_alloc=True)
        ops = [net.ops["normal"], net.ops["reduce"]]
        return NaspSteps(net, twin, w_trainer, arch_trainer, task=task, ctxs=ctxs, steps=net.steps, ops=ops,
                         eta=cfg.search.nasp.eta, clip_norm=cfg.search.clip_norm, rank=rank)
