"""When the search stops (``search.until``): after ``search.epochs`` epochs, or once the λ
support has settled (TPAMI §4.2: the search runs "until convergence"), ``search.epochs`` then
being the cap."""
from __future__ import annotations

__all__ = ["STOP_RULES", "converged"]

#: ``epochs``: every one of ``search.epochs``; ``converged``: stop when the support (the set of
#: non-zero λ) has not changed for ``search.patience`` epochs in a row.
STOP_RULES = ("epochs", "converged")


def converged(until: str, unchanged: int, patience: int) -> bool:
    """Whether the search ends now: ``unchanged`` epochs in a row left the support as it was."""
    return until == "converged" and unchanged >= patience
