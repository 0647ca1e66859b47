"""The Table-1 baselines: random structures and the full network.

* ``random-share`` / ``random-full``: every λ edge of a block is kept independently
  with probability ``keep_rate``, or - given ``counts`` - exactly ``counts[i]`` edges of
  block ``i`` drawn uniformly (Table 1's "same number of connections" as a searched block);
  one random block for ``share``, one per normal block for ``full``. The cell is then
  derived with the same dead-op rule as a searched one.
* ``full network``: every edge kept (the completely connected supernet block, without λ).

All of them are then brought to the same budget as the searched models (Table 1:
about 3.0M parameters) by :func:`dso_nas.models.width.find_width_multiplier`.

The ``template`` argument is a :class:`~dso_nas.spaces.dense.arch.Layout` (stem, widths, stages,
levels, ops), e.g. ``Layout.from_config(cfg.model)``, or an existing
:class:`~dso_nas.spaces.dense.arch.Architecture` (a ``Layout`` too) whose layout is reused.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .arch import SCOPES, Architecture, Layout, derive_architecture
from .graph import num_lambda


def random_architecture(template: Layout, *, scope: str, keep_rate: float,
                        seed: int, counts: Optional[Sequence[int]] = None) -> Architecture:
    """A random structure: each edge kept with probability ``keep_rate``.

    Parameters
    ----------
    template : Layout
        The network layout (of an Architecture: its own; its cells are ignored).
    scope : {"share", "full"}
        One random cell for all blocks, or one per normal block.
    keep_rate : float
        Probability in ``[0, 1]`` of keeping each λ edge.
    seed : int
        Seed of the NumPy generator; the same seed gives the same architecture.
    counts : sequence of int, optional
        Keep exactly these numbers of edges, one per cell (1 for ``share``, one per normal
        block for ``full``); ``keep_rate`` is then only recorded.

    Returns
    -------
    Architecture
    """
    if not 0.0 <= keep_rate <= 1.0:
        raise ValueError(f"keep_rate must be in [0, 1], got {keep_rate}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    rng = np.random.RandomState(seed)
    n_cells = 1 if scope == "share" else template.num_blocks
    size = num_lambda(template.levels, len(template.ops))
    meta = {"source": f"random-{scope}", "keep_rate": float(keep_rate), "seed": int(seed)}
    if counts is None:
        lambdas = [(rng.random_sample(size) < keep_rate).astype(np.float32) for _ in range(n_cells)]
    else:
        if len(counts) != n_cells or not all(0 <= int(k) <= size for k in counts):
            raise ValueError(f"need {n_cells} edge count(s) in [0, {size}] for scope {scope!r}, got {list(counts)}")
        lambdas = []
        for k in counts:
            lam = np.zeros(size, dtype=np.float32)
            lam[rng.choice(size, int(k), replace=False)] = 1.0
            lambdas.append(lam)
        meta["edges"] = [int(k) for k in counts]
    return derive_architecture(lambdas, scope=scope, layout=template, meta=meta)


def full_architecture(template: Layout) -> Architecture:
    """The full network: every op and every edge of every block kept (``share`` scope)."""
    lam = np.ones(num_lambda(template.levels, len(template.ops)), dtype=np.float32)
    return derive_architecture([lam], scope="share", layout=template, meta={"source": "full"})
