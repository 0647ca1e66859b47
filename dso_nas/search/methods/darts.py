"""First-order DARTS (Liu et al., ICLR 2019) on the DARTS space: softmax-mixed edges, α by Adam.

Each edge's output is ``Σ_o softmax(α_e)_o · op_o(x)`` over every op; a round is one Adam step
of α on a D_λ batch (the first-order approximation: the gradient at the current weights, no
unrolled step), then one SGD step of the weights on a D_w batch. α start at ``1e-3 · N(0, 1)``
(DARTS' ``_initialize_alphas``); the cells are DARTS' ``genotype()``: per node the two edges
with the largest non-``none`` softmax weight, per edge that op.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon

from ...engine.distributed import Distributed
from .base import SearchMethod

__all__ = ["DartsMethod", "SoftmaxRuleMethod", "adam_trainer", "edge_softmax"]


def adam_trainer(net: Any, cfg: Any, dist: Distributed) -> gluon.Trainer:
    """Adam on the architecture parameters (``search.arch``: NASP's and DARTS' 3e-4, (0.5, 0.999), 1e-3)."""
    a = cfg.search.arch
    return dist.trainer(net.lambda_params(), "adam",
                        {"learning_rate": a.lr, "beta1": a.beta1, "beta2": a.beta2, "wd": a.wd, "epsilon": 1e-8})


def edge_softmax(values: np.ndarray, n_ops: int) -> np.ndarray:
    """The softmax of each edge's entries (flat, edge-major, ``n_ops`` per edge)."""
    v = np.asarray(values, np.float64).reshape(-1, n_ops)
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(-1)


class SoftmaxRuleMethod(SearchMethod):
    """A method whose cells are DARTS' ``genotype()``: DARTS' rule on the per-edge softmax of α
    (DARTS, and NASP's code). Its support is the entries that rule keeps."""

    def derive(self, space: Any, cfg: Any, values: Sequence[np.ndarray], meta: Dict[str, Any]) -> Any:
        """DARTS' rule on the softmax weights."""
        return space.derive(cfg, self._softmax(space, cfg, values), {**meta, "method": self.name}, rule="darts")

    def support(self, space: Any, cfg: Any, values: Sequence[np.ndarray]) -> List[List[int]]:
        return [np.flatnonzero(m).tolist() for m in space.rule_masks(cfg, self._softmax(space, cfg, values))]

    @staticmethod
    def _softmax(space: Any, cfg: Any, values: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [edge_softmax(v, len(ops)) for v, ops in zip(values, space.cell_ops(cfg))]


class DartsMethod(SoftmaxRuleMethod):
    """First-order DARTS."""

    name = "darts"
    title = "DARTS (first order)"
    needs = ("softmax",)
    weighting = "softmax"
    weight_optimizer = "sgd"

    def init_arch(self, net: Any, cfg: Any) -> None:
        """``1e-3 · N(0, 1)``, drawn from ``seed``."""
        rng = np.random.RandomState(cfg.seed)
        for p in net.lambda_params():
            p.set_data(mx.nd.array(1e-3 * rng.standard_normal(p.shape)))

    def arch_trainer(self, net: Any, cfg: Any, dist: Distributed) -> gluon.Trainer:
        return adam_trainer(net, cfg, dist)
