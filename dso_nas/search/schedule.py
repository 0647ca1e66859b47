"""The weights' learning rate over the search epochs (``search.lr_schedule``).

``constant`` keeps ``search.lr`` (DSO-NAS: 0.1). ``cosine`` is NASP's and DARTS' per-epoch
cosine annealing from ``search.lr`` to ``search.lr_min`` over ``search.epochs``: epoch ``e``
trains at ``lr_min + (lr - lr_min) · (1 + cos(π e / epochs)) / 2`` (PyTorch's
``CosineAnnealingLR`` stepped at each epoch's start, as both codes do). A pure function of the
epoch, so a resumed search trains at the same rates.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["SEARCH_LR_SCHEDULES", "search_rate"]

#: ``search.lr_schedule``.
SEARCH_LR_SCHEDULES = ("constant", "cosine")


def search_rate(s: Any, epoch: int) -> float:
    """The weights' learning rate in search epoch ``epoch`` (0-based) of the ``search`` config node ``s``."""
    if s.lr_schedule == "constant":
        return float(s.lr)
    if s.lr_schedule == "cosine":
        return float(s.lr_min + (s.lr - s.lr_min) * (1.0 + math.cos(math.pi * epoch / max(s.epochs, 1))) / 2.0)
    raise ValueError(f"unknown search.lr_schedule {s.lr_schedule!r}; valid: {SEARCH_LR_SCHEDULES}")
