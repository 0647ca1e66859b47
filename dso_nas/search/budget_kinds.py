"""Budget kinds as a registry (``search.budget``): a new budget is one builder plus one line.

Each entry of :data:`BUDGETS` is a builder ``(Inputs) -> Budget``; :func:`make_budget`
looks the kind up and sets the space's protected entries. The budgets themselves live in
:mod:`dso_nas.search.budgets` (none, FLOPs, MAC) and :mod:`dso_nas.search.latency` (Eq. 19).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..errors import ConfigError
from ..latency import wall_clock_latency
from ..registry import Registry
from .budgets import Budget, FlopsBudget, MacBudget, Measure
from .latency import LatencyBudget

__all__ = ["BUDGETS", "BUDGET_KINDS", "BudgetInputs", "make_budget"]


@dataclass
class BudgetInputs:
    """What a budget builder may use (the arguments of :func:`make_budget`)."""

    space: Any
    net: Any
    trainer: mx.gluon.Trainer
    input_shape: Tuple[int, int, int]
    gamma: float
    gamma0: float
    latency_runs: int
    latency_warmup: int
    latency_input: int
    latency_every: int
    ctx: Optional[mx.Context]
    measure: Optional[Measure]
    latency_net: Optional[Callable[[Any], Any]]
    share: Optional[Callable[[Measure], Measure]]

    def params(self) -> list:
        """The supernet's λ parameters."""
        return list(self.net.lambda_params())


#: ``search.budget`` name -> builder ``(BudgetInputs) -> Budget``.
BUDGETS: Registry[Callable[[BudgetInputs], Budget]] = Registry("search budget", "search.budget")


@BUDGETS.register("none")
def _none(i: BudgetInputs) -> Budget:
    return Budget(i.trainer, i.params())


@BUDGETS.register("flops")
def _flops(i: BudgetInputs) -> Budget:
    params = i.params()
    return FlopsBudget(i.trainer, params, i.space.budget_blocks(i.net, tuple(i.input_shape[1:])))


@BUDGETS.register("mac")
def _mac(i: BudgetInputs) -> Budget:
    params = i.params()
    return MacBudget(i.trainer, params, i.space.budget_blocks(i.net, tuple(i.input_shape[1:])))


@BUDGETS.register("latency")
def _latency(i: BudgetInputs) -> Budget:
    params = i.params()
    if i.gamma0 > 0 and not i.gamma > 0:
        raise ConfigError("search.gamma0 > 0 needs search.gamma > 0: the λ optimizer's threshold is "
                          "η·γ·multiplier, so γ₀ cannot act when γ = 0")
    measure = i.measure
    if measure is None:
        if i.latency_net is None:
            raise ValueError("the latency budget needs measure or latency_net")
        shape = (1, int(i.input_shape[0]), int(i.latency_input), int(i.latency_input))
        latency_net, runs, warmup, ctx = i.latency_net, i.latency_runs, i.latency_warmup, i.ctx

        def measure(arch: Any) -> float:
            return wall_clock_latency(latency_net(arch), shape, runs=runs, warmup=warmup, ctx=ctx)
    if i.share is not None:
        measure = i.share(measure)
    return LatencyBudget(i.trainer, params, deriver=i.space.lambda_deriver(i.net), measure=measure, gamma=i.gamma,
                         gamma0=i.gamma0, every=i.latency_every)


#: The names ``search.budget`` accepts (the config's choices).
BUDGET_KINDS: Tuple[str, ...] = BUDGETS.choices()


def make_budget(kind: str, *, space: Any, net: Any, trainer: mx.gluon.Trainer, input_shape: Tuple[int, int, int],
                gamma: float, gamma0: float = 0.0, latency_runs: int = 5, latency_warmup: int = 2,
                latency_input: int = 224, latency_every: int = 1, ctx: Optional[mx.Context] = None,
                measure: Optional[Measure] = None,
                latency_net: Optional[Callable[[Any], Any]] = None,
                share: Optional[Callable[[Measure], Measure]] = None,
                protect: Optional[Callable[[Sequence[np.ndarray]], List[np.ndarray]]] = None) -> Budget:
    """The budget of ``search.budget``.

    Parameters
    ----------
    kind : str
        A name in :data:`BUDGETS` (none, flops, mac, latency).
    space : SearchSpace
        The supernet's space (:mod:`dso_nas.spaces`): its blocks' costs and derivation.
    net : HybridBlock
        The supernet (λ parameters, blocks, their λ index and shapes).
    trainer : gluon.Trainer
        Its λ Trainer (APG-NAG).
    input_shape : (int, int, int)
        ``(C, H, W)`` of the training images (block shapes for FLOPs/MAC; ``C`` for latency).
    gamma, gamma0 : float
        γ of the λ optimizer, γ₀ of Eq. 19 (latency only).
    latency_runs, latency_warmup, latency_input, ctx
        Settings of the default wall-clock probe (:func:`wall_clock_latency`).
    latency_every : int
        Re-measure latencies at the start of every this many epochs.
    measure : callable, optional
        ``architecture -> latency`` replacing the wall-clock probe (tests, lookup tables).
    latency_net : callable, optional
        ``architecture -> uninitialized network`` that the wall-clock probe times (needed
        for ``"latency"`` without ``measure``).
    protect : callable, optional
        ``λ -> bool arrays``: λ entries whose multiplier is held at 0 (the space's
        :meth:`~dso_nas.spaces.base.SearchSpace.protected_lambda`).
    share : callable, optional
        Wraps the latency measure (a distributed run measures on rank 0 and shares the value:
        :meth:`dso_nas.engine.distributed.Distributed.from_writer`).

    Raises
    ------
    ConfigError
        On an unknown kind, ``latency_every < 1``, or ``gamma0 > 0`` with ``gamma == 0``.
    """
    if kind not in BUDGETS:
        raise ConfigError(f"search.budget must be one of {', '.join(BUDGETS.choices())}, got {kind!r}")
    budget = BUDGETS.get(kind)(BudgetInputs(
        space=space, net=net, trainer=trainer, input_shape=input_shape, gamma=gamma, gamma0=gamma0,
        latency_runs=latency_runs, latency_warmup=latency_warmup, latency_input=latency_input,
        latency_every=latency_every, ctx=ctx, measure=measure, latency_net=latency_net, share=share))
    budget.protect = protect
    return budget
