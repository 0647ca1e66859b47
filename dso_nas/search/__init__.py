"""The sparse search: APG-NAG for the scaling factors λ (TPAMI §3.3) and the budgets (§3.4)."""
from dso_nas.search.apgnag import APGNAG, MOMENTUM_SCHEDULES, lambda_iterates, soft_threshold_nonneg

__all__ = ["APGNAG", "MOMENTUM_SCHEDULES", "lambda_iterates", "soft_threshold_nonneg"]
