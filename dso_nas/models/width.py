"""Choosing the global width multiplier of the derived network (TPAMI §4.1).

"We adjust the number of filters in each operation by a global width multiplier to satisfy
the computation budget": about 3.0M parameters on CIFAR-10 (Table 1, searched models and
baselines alike) and at most 600M FLOPs on ImageNet (Table 2). The analytic counts of
:func:`dso_nas.models.derived.arch_cost` are non-decreasing in the multiplier (widths are
rounded to the nearest integer), so a bisection finds the largest multiplier within budget.
"""
from __future__ import annotations

import logging
from typing import Tuple

from dso_nas.errors import ConfigError
from dso_nas.models.arch import Architecture
from dso_nas.models.derived import arch_cost, scaled_width

__all__ = ["find_width_multiplier", "scaled_width"]

log = logging.getLogger(__name__)


def find_width_multiplier(arch: Architecture, *, target_params: float = 0, target_flops: float = 0,
                          input_hw: Tuple[int, int], num_classes: int, lo: float = 0.05,
                          hi: float = 8.0, rtol: float = 1e-4, **cost_kwargs) -> float:
    """The largest width multiplier whose analytic cost meets the budget.

    Parameters
    ----------
    arch : Architecture
        The architecture to scale.
    target_params : float
        Maximal trainable parameters (0 = no limit).
    target_flops : float
        Maximal multiply-adds (0 = no limit). When both are given both must hold.
    input_hw : (int, int)
        Input image height and width (FLOPs depend on it).
    num_classes : int
        Classifier outputs.
    lo, hi : float
        Search interval of the multiplier.
    rtol : float
        Relative precision: the result ``m`` meets the budget and ``m·(1 + rtol)`` does not
        (unless ``hi`` itself meets it, in which case ``hi`` is returned).
    **cost_kwargs
        Passed to :func:`~dso_nas.models.derived.arch_cost` (``first_shortcut``, ``affine``).

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        When no budget is given, or when even ``lo`` exceeds it.
    """
    if target_params <= 0 and target_flops <= 0:
        raise ConfigError("find_width_multiplier needs target_params > 0 or target_flops > 0")
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")

    def fits(m: float) -> bool:
        cost = arch_cost(arch, m, input_hw, num_classes, **cost_kwargs)["total"]
        return ((target_params <= 0 or cost.params <= target_params)
                and (target_flops <= 0 or cost.flops <= target_flops))

    if not fits(lo):
        cost = arch_cost(arch, lo, input_hw, num_classes, **cost_kwargs)["total"]
        raise ConfigError(
            f"the budget (params <= {target_params:g}, flops <= {target_flops:g}; 0 = none) is below "
            f"the narrowest network: width multiplier {lo} gives {cost.params} params, "
            f"{cost.flops} FLOPs")
    if fits(hi):
        log.warning("width multiplier reached the upper bound %g within budget", hi)
        return hi
    good, bad = lo, hi
    while bad > good * (1.0 + rtol):
        mid = (good + bad) / 2.0
        if fits(mid):
            good = mid
        else:
            bad = mid
    cost = arch_cost(arch, good, input_hw, num_classes, **cost_kwargs)
    log.info("width multiplier %.4f: %d params, %d FLOPs, widths %s", good, cost["total"].params,
             cost["total"].flops, cost["widths"])
    return good
