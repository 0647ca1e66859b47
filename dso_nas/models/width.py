"""Choosing the global width multiplier of the derived network (TPAMI §4.1).

"We adjust the number of filters in each operation by a global width multiplier to satisfy
the computation budget": about 3.0M parameters on CIFAR-10 (Table 1, searched models and
baselines alike) and at most 600M FLOPs on ImageNet (Table 2). The cost is whatever the
caller counts - the pipeline passes the space's analytic cost of the derived net with the
task's head (:meth:`SearchSpace.net_cost`) - and is non-decreasing in the multiplier
(widths are rounded to the nearest integer), so a bisection finds the largest multiplier
within budget.
"""
from __future__ import annotations

import logging
from typing import Callable

from dso_nas.errors import ConfigError
from dso_nas.ops import Cost

__all__ = ["find_width_multiplier"]

log = logging.getLogger(__name__)


def find_width_multiplier(cost: Callable[[float], Cost], *, target_params: float = 0, target_flops: float = 0,
                          lo: float = 0.05, hi: float = 8.0, rtol: float = 1e-4) -> float:
    """The largest width multiplier whose cost meets the budget.

    Parameters
    ----------
    cost : callable
        ``width multiplier -> Cost`` of the whole network at that width.
    target_params : float
        Maximal trainable parameters (0 = no limit).
    target_flops : float
        Maximal multiply-adds (0 = no limit). When both are given both must hold.
    lo, hi : float
        Search interval of the multiplier.
    rtol : float
        Relative precision: the result ``m`` meets the budget and ``m·(1 + rtol)`` does not.

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        When no budget is given, when even ``lo`` exceeds it, or when even ``hi`` stays within
        it (the budget is far above what this architecture can sensibly be widened to).
    """
    if target_params <= 0 and target_flops <= 0:
        raise ConfigError("find_width_multiplier needs target_params > 0 or target_flops > 0")
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")

    def fits(m: float) -> bool:
        c = cost(m)
        return ((target_params <= 0 or c.params <= target_params)
                and (target_flops <= 0 or c.flops <= target_flops))

    if not fits(lo):
        c = cost(lo)
        raise ConfigError(
            f"the budget (params <= {target_params:g}, flops <= {target_flops:g}; 0 = none) is below "
            f"the narrowest network: width multiplier {lo} gives {c.params} params, {c.flops} FLOPs")
    if fits(hi):
        c = cost(hi)
        raise ConfigError(
            f"the budget (params <= {target_params:g}, flops <= {target_flops:g}; 0 = none) cannot be met "
            f"sensibly: even width multiplier {hi:g} gives only {c.params} params, {c.flops} FLOPs; lower "
            f"retrain.target_params / retrain.target_flops, or set them to 0 and choose retrain.width_mult")
    good, bad = lo, hi
    while bad > good * (1.0 + rtol):
        mid = (good + bad) / 2.0
        if fits(mid):
            good = mid
        else:
            bad = mid
    c = cost(good)
    log.info("width multiplier %.4f: %d params, %d FLOPs", good, c.params, c.flops)
    return good
