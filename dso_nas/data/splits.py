"""What every dataset's loaders share: the :class:`Loaders` bundle, the seeded D_w / D_λ index
split and the per-loader seeds derived from the run's seed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from ..errors import ConfigError
from .loader import Loader

__all__ = ["Loaders", "split_indices", "child_seeds"]


@dataclass
class Loaders:
    """Loaders of D_w (``weights``), D_λ (``lambdas``), all training images and the evaluation
    set (``test``: the test set, or the validation split held out of the training images,
    as ``eval_split`` says)."""

    weights: Loader
    lambdas: Loader
    full: Loader
    test: Loader
    eval_split: str = "test"


def split_indices(n: int, weight_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Random disjoint, covering, sorted index sets of sizes ``round(n * fraction)`` and the rest.

    Deterministic in ``seed``; returns ``(idx_w, idx_lam)``.
    """
    if not 0.0 < weight_fraction < 1.0:
        raise ConfigError(f"weight fraction must lie in (0, 1), got {weight_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_w = int(round(n * weight_fraction))
    return np.sort(perm[:n_w]), np.sort(perm[n_w:])


def child_seeds(seed: int, count: int) -> List[int]:
    """``count`` independent non-negative integer seeds derived from ``seed``."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]
