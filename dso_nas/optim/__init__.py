"""Optimizers of the search: APG-NAG for the scaling factors λ (TPAMI §3.3)."""
from dso_nas.optim.apgnag import APGNAG, MOMENTUM_SCHEDULES, lambda_iterates, soft_threshold_nonneg

__all__ = ["APGNAG", "MOMENTUM_SCHEDULES", "lambda_iterates", "soft_threshold_nonneg"]
