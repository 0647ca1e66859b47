"""Budget-aware sparsity: per-connection multipliers of γ (TPAMI 2020, §3.4, Eqs. 17-19).

The APG-NAG step thresholds entry ``i`` of a λ parameter ``p`` at ``η γ scale_p[i]``
(:meth:`dso_nas.search.apgnag.APGNAG.set_gamma_scale`). A :class:`Budget` computes the
``scale`` arrays from the current λ iterates and hands them to ``trainer.optimizer`` (looked
up at every call: ``Trainer.load_states`` replaces the optimizer object, and the multipliers
travel with it through ``save_states``/``load_states``).

Kinds (registry :data:`dso_nas.search.budget_kinds.BUDGETS`)
-----------------------------------------------------------
``"none"``
    Every multiplier is 1: the plain ``γ‖λ‖₁`` of Eq. 8.

``"flops"`` - Adaptive FLOPs, Eq. 17: ``γ_t = γ · FLOPs_t / FLOPs_block``.
    ``FLOPs_t`` is the analytic FLOPs of what the λ mask (``λ != 0``) keeps of the block
    (:attr:`BudgetBlock.cost`, from the space; dense: live ops and the ``1 x 1`` reduction over
    the live outputs);
    ``FLOPs_block`` that of the complete block. Every λ of the block gets the ratio. In the
    ``share`` scope one λ vector serves every block, so its ratio is
    ``Σ_b FLOPs_t(b) / Σ_b FLOPs_block(b)`` over the blocks that use it (each block at its own
    ``(C, H, W)``); in the ``full`` scope each block has its own vector and this is Eq. 17 as is.
    Recomputed by :meth:`Budget.refresh` (the pipeline calls it every ``search.budget_every``
    λ steps) and at every epoch start.

``"mac"`` - Adaptive MAC, Eq. 18: ``γ_(m,n) = γ · MAC_(m,n) / MAC_max``.
    ``MAC_(m,n)`` is the analytic MAC of operation ``(m, n)`` alone (:func:`op_cost`: input
    read, weights read, output written) at its block's ``(C, H, W)`` (the space gives it per
    λ entry: :attr:`BudgetBlock.entry_mac`); ``MAC_max`` the largest
    such value over every operation of every block. An edge into an operation ``(i, j)``
    gets the MAC of ``(i, j)`` (the op it feeds: removing all of them removes that op); an
    edge into the block output gets the MAC of its source op (the op whose survival it
    decides). In this cost model an op's MAC does not change during the search, so the
    multipliers are constant. ``share`` scope: an entry gets the mean, over the blocks that
    use the shared vector, of the per-block multipliers (so each block contributes its own
    ``MAC/MAC_max`` and the normalisation is the same as in the ``full`` scope).

``"latency"`` - Adaptive latency, Eq. 19: :mod:`dso_nas.search.latency`.

Multipliers versus γ
--------------------
The optimizer applies ``η γ scale``, so Eq. 19 becomes ``scale_c = (γ₀ + γ · ratio_c) / γ``.
With ``γ = 0`` the threshold is 0 whatever the multiplier: ``γ₀ > 0`` then cannot act and
:func:`~dso_nas.search.budget_kinds.make_budget` refuses it (``ConfigError``); with
``γ = γ₀ = 0`` the multipliers are the ratios (harmless).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..spaces.base import BudgetBlock

__all__ = [
    "Measure",
    "Budget",
    "FlopsBudget",
    "MacBudget",
    "flops_ratios",
    "mac_multipliers",
]

LOG = logging.getLogger("dso_nas")

#: A latency probe: architecture -> latency (any unit, the same for every call).
Measure = Callable[[Any], float]


def _masks(lambdas: Sequence[np.ndarray], n_params: int) -> List[np.ndarray]:
    if len(lambdas) != n_params:
        raise ValueError(f"expected {n_params} λ arrays (one per λ parameter), got {len(lambdas)}")
    return [np.asarray(lam).reshape(-1) != 0 for lam in lambdas]


# --------------------------------------------------------------------------- Eq. 17
def flops_ratios(blocks: Sequence[BudgetBlock], masks: Sequence[np.ndarray],
                 block_flops: Optional[Callable[[int, np.ndarray], int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Kept-to-complete FLOPs ratios of Eq. 17.

    Parameters
    ----------
    blocks : sequence of BudgetBlock
    masks : sequence of numpy.ndarray of bool
        One flat λ mask per λ parameter.
    block_flops : callable, optional
        ``(block index, mask) -> FLOPs``; default ``blocks[b].cost(mask).flops`` (lets a
        caller cache).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Per λ parameter ``Σ FLOPs_t / Σ FLOPs_block`` over the blocks using it (1 for a
        parameter no block uses), and each block's own ratio.
    """
    if block_flops is None:
        def block_flops(b: int, mask: np.ndarray) -> int:
            return int(blocks[b].cost(mask).flops)
    kept = np.zeros(len(masks))
    full = np.zeros(len(masks))
    own = np.ones(len(blocks))
    for b, info in enumerate(blocks):
        k = float(block_flops(b, masks[info.param]))
        f = float(block_flops(b, np.ones_like(masks[info.param])))
        kept[info.param] += k
        full[info.param] += f
        own[b] = k / f if f > 0 else 1.0
    ratio = np.divide(kept, full, out=np.ones_like(kept), where=full > 0)
    return ratio, own


# --------------------------------------------------------------------------- Eq. 18
def mac_multipliers(blocks: Sequence[BudgetBlock], n_params: int) -> Tuple[List[np.ndarray], int]:
    """Per-entry ``MAC_op / MAC_max`` of Eq. 18 (see the module docstring).

    Returns
    -------
    (list of numpy.ndarray, int)
        One multiplier array per λ parameter (entries of a parameter no block uses are 1)
        and ``MAC_max``.
    """
    per_block = [np.asarray(info.entry_mac, dtype=np.float64) for info in blocks]
    mac_max = max((float(m.max()) for m in per_block), default=0.0)
    sums: List[Optional[np.ndarray]] = [None] * n_params
    counts = [0] * n_params
    for info, mac in zip(blocks, per_block):
        ratio = mac / mac_max if mac_max > 0 else np.ones_like(mac)
        sums[info.param] = ratio if sums[info.param] is None else sums[info.param] + ratio
        counts[info.param] += 1
    out = []
    for p in range(n_params):
        if sums[p] is None:
            out.append(np.array(1.0))
        else:
            out.append(sums[p] / counts[p])
    return out, int(mac_max)


# --------------------------------------------------------------------------- budgets
def _stats(arrays: Sequence[np.ndarray]) -> Dict[str, float]:
    flat = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]) if arrays else np.ones(1)
    return {"min": round(float(flat.min()), 6), "mean": round(float(flat.mean()), 6),
            "max": round(float(flat.max()), 6)}


class NoPenalty:
    """What a search method without the ℓ1 penalty (NASP, DARTS) has in a budget's place."""

    kind = "none"

    def start_epoch(self, epoch: int, lambdas: Sequence[np.ndarray]) -> None:
        """Nothing to adapt."""

    def refresh(self, lambdas: Sequence[np.ndarray]) -> None:
        """Nothing to adapt."""

    def summary(self) -> Dict[str, Any]:
        """``{"kind": "none"}``."""
        return {"kind": self.kind}


class Budget:
    """Budget ``"none"`` and the base of the others: every multiplier 1.

    Parameters
    ----------
    trainer : gluon.Trainer
        The λ Trainer (APG-NAG); its ``optimizer`` is looked up at every call.
    params : sequence of gluon.Parameter
        The λ parameters, in the order of the ``lambdas`` lists passed in.
    """

    kind = "none"

    def __init__(self, trainer: mx.gluon.Trainer, params: Sequence[mx.gluon.Parameter]) -> None:
        self.trainer = trainer
        self.params = list(params)
        #: ``λ -> bool arrays`` of λ entries to spare (multiplier 0); set by
        #: :func:`~dso_nas.search.budget_kinds.make_budget`.
        self.protect: Optional[Callable[[Sequence[np.ndarray]], List[np.ndarray]]] = None

    # -- the pipeline's hooks ------------------------------------------------------------
    def start_epoch(self, epoch: int, lambdas: Sequence[np.ndarray]) -> None:
        """Called at the start of every search epoch with the current λ iterates."""
        self.refresh(lambdas)

    def refresh(self, lambdas: Sequence[np.ndarray]) -> None:
        """Called before λ steps (every ``search.budget_every``); recomputes and applies."""
        self.apply(self.multipliers(lambdas))
        self.spare(lambdas)

    def spare(self, lambdas: Sequence[np.ndarray]) -> None:
        """Set the multiplier of the entries :attr:`protect` names to 0 (the space's entries
        that must not be pruned, e.g. the last op of a mobile block without residual)."""
        if self.protect is None:
            return
        _masks(lambdas, len(self.params))
        masks = self.protect(lambdas)
        current = self.in_force()
        scales = []
        for scale, keep in zip(current, masks):
            scale = np.array(scale, dtype=np.float64)
            scale[np.asarray(keep, bool).reshape(scale.shape)] = 0.0
            scales.append(scale)
        self.apply(scales)

    def summary(self) -> Dict[str, Any]:
        """The multipliers in force (read from the optimizer), as a small JSON-able dict."""
        return {"kind": self.kind, "scale": _stats(self.in_force())}

    # -- mechanics -----------------------------------------------------------------------
    def multipliers(self, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        """The multiplier array of every λ parameter for these λ."""
        _masks(lambdas, len(self.params))
        return [np.ones(p.shape) for p in self.params]

    def apply(self, scales: Sequence[np.ndarray]) -> None:
        """Hand the multipliers to the optimizer (only those that changed)."""
        opt = self.trainer.optimizer
        for p, scale in zip(self.params, scales):
            scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), p.shape)
            if not np.array_equal(opt.gamma_scale(p.name), scale):
                opt.set_gamma_scale(p.name, scale)

    def in_force(self) -> List[np.ndarray]:
        """The optimizer's current multiplier of every λ parameter (shape of the parameter)."""
        opt = self.trainer.optimizer
        return [np.broadcast_to(opt.gamma_scale(p.name), p.shape) for p in self.params]

    def _scales_set(self) -> bool:
        """Whether the optimizer holds a multiplier array for every λ parameter."""
        opt = self.trainer.optimizer
        return all(np.ndim(opt.gamma_scale(p.name)) > 0 for p in self.params)


class FlopsBudget(Budget):
    """Adaptive FLOPs (Eq. 17): one multiplier per block, ``FLOPs_t / FLOPs_block``."""

    kind = "flops"

    def __init__(self, trainer: mx.gluon.Trainer, params: Sequence[mx.gluon.Parameter],
                 blocks: Sequence[BudgetBlock]) -> None:
        super().__init__(trainer, params)
        self.blocks = list(blocks)
        self._last: Dict[Tuple[int, bytes], int] = {}
        self.block_ratio = np.ones(len(self.blocks))

    def _block_flops(self, b: int, mask: np.ndarray) -> int:
        key = (b, np.packbits(mask).tobytes())
        if key not in self._last:
            if len(self._last) > 4 * len(self.blocks) + 8:
                self._last.clear()
            self._last[key] = int(self.blocks[b].cost(mask).flops)
        return self._last[key]

    def multipliers(self, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        masks = _masks(lambdas, len(self.params))
        ratio, self.block_ratio = flops_ratios(self.blocks, masks, self._block_flops)
        return [np.full(p.shape, r) for p, r in zip(self.params, ratio)]

    def summary(self) -> Dict[str, Any]:
        return {"kind": self.kind,
                "scale": [round(float(np.mean(s)), 6) for s in self.in_force()],
                "block_ratio": [round(float(r), 6) for r in self.block_ratio]}


class MacBudget(Budget):
    """Adaptive MAC (Eq. 18): constant per-entry ``MAC_op / MAC_max``."""

    kind = "mac"

    def __init__(self, trainer: mx.gluon.Trainer, params: Sequence[mx.gluon.Parameter],
                 blocks: Sequence[BudgetBlock]) -> None:
        super().__init__(trainer, params)
        self._scales, self.mac_max = mac_multipliers(blocks, len(self.params))

    def multipliers(self, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        _masks(lambdas, len(self.params))
        return [np.broadcast_to(s, p.shape).copy() for p, s in zip(self.params, self._scales)]

    def summary(self) -> Dict[str, Any]:
        return {"kind": self.kind, "mac_max": self.mac_max, "scale": _stats(self.in_force())}
