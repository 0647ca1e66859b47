"""Adaptive latency (TPAMI 2020, §3.4, Eq. 19): per-connection γ multipliers from latencies.

``"latency"`` - Adaptive latency, Eq. 19: ``γ_c = γ₀ + γ · (LAT_c - LAT_min) / (LAT_max - LAT_min)``.
    The paper defines the latency of a connection as "the latency deduction of the whole
    network when this connection is removed"; that is what ``LAT_c`` is here:
    ``LAT_c = latency(net with c) - latency(net without c)``, both nets derived
    (by the space's :class:`~dso_nas.spaces.base.LambdaDeriver`) from the current λ mask with
    entry ``c`` switched on or off - for a
    live edge the first is the current network, for a pruned edge the second is. A
    connection that costs more time therefore gets the larger penalty, as with Eqs. 17-18.
    (The "where" clause under Eq. 19 calls ``LAT_c`` "the latency of the network when the
    connection is pruned"; used literally, the min-max ratio would be ``1 -`` ours and the
    connection whose removal saves the most time would get the smallest penalty.)
    ``LAT_min``/``LAT_max`` run over every λ entry of every parameter (the network's
    connections). When they are equal every ratio is 0. Each derived architecture is
    measured once (cached by its cells for the Budget's lifetime: many toggles give the same
    derived net, e.g. an edge into a dead op). Re-measured at the start of every
    ``latency_every``-th epoch (:meth:`Budget.start_epoch`); between re-measurements the
    multipliers stay as they are in the optimizer. ``measure`` is injectable; the default,
    :func:`dso_nas.latency.wall_clock_latency`, times the network ``latency_net(arch)`` builds (the pipeline
    passes the space's derived net at width 1, in the op form of the run's context), batch 1.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..errors import ConfigError
from ..spaces.base import LambdaDeriver
from .budgets import Budget, Measure, _masks, _stats

__all__ = ["min_max_ratio", "LatencyBudget"]

#: ``latency.model``: ``"table"`` sums the space's per-piece lookup table (:class:`dso_nas.latency.LatencyTable`),
#: ``"wall_clock"`` times each derived network (:func:`dso_nas.latency.wall_clock_latency`).
LATENCY_MODELS = ("table", "wall_clock")


def min_max_ratio(values: Sequence[np.ndarray]) -> List[np.ndarray]:
    """``(v - min) / (max - min)`` over all entries of all arrays; all 0 when max == min."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])
    lo, hi = float(flat.min()), float(flat.max())
    span = hi - lo
    if not span > 0:
        return [np.zeros(np.shape(v)) for v in values]
    return [(np.asarray(v, dtype=np.float64) - lo) / span for v in values]


class LatencyBudget(Budget):
    """Adaptive latency (Eq. 19), re-measured every ``every`` epochs.

    Parameters
    ----------
    trainer, params
        As for :class:`Budget`.
    deriver : LambdaDeriver
        The space's derivation of λ masks to architectures.
    measure : callable
        ``architecture -> latency``.
    gamma, gamma0 : float
        γ of the optimizer and γ₀ of Eq. 19.
    every : int
        Re-measure at the start of epochs ``0, every, 2·every, ...``.
    """

    kind = "latency"

    def __init__(self, trainer: mx.gluon.Trainer, params: Sequence[mx.gluon.Parameter], *,
                 deriver: LambdaDeriver, measure: Measure, gamma: float, gamma0: float = 0.0,
                 every: int = 1) -> None:
        super().__init__(trainer, params)
        if int(every) < 1:
            raise ConfigError(f"search.latency_every must be >= 1, got {every}")
        self.deriver = deriver
        self.measure, self.gamma, self.gamma0, self.every = measure, float(gamma), float(gamma0), int(every)
        self.cache: Dict[Tuple[Any, ...], float] = {}
        self.measurements = 0
        self.cache_hits = 0
        self.last: Dict[str, Any] = {}

    # -- hooks ---------------------------------------------------------------------------
    def start_epoch(self, epoch: int, lambdas: Sequence[np.ndarray]) -> None:
        """Re-measure on every ``every``-th epoch, or when the optimizer has no multipliers
        yet (e.g. a resumed run whose λ Trainer state was not saved)."""
        if epoch % self.every == 0 or not self._scales_set():
            self.last = {"epoch": int(epoch)}
            self.apply(self.multipliers(lambdas))

    def refresh(self, lambdas: Sequence[np.ndarray]) -> None:
        """Latency multipliers change only at epoch starts (the spared entries before every step)."""
        self.spare(lambdas)

    def summary(self) -> Dict[str, Any]:
        return {"kind": self.kind, **self.last, "scale": _stats(self.in_force()),
                "measurements": self.measurements, "cache_hits": self.cache_hits}

    # -- mechanics -----------------------------------------------------------------------
    def latency(self, parts: Tuple[Any, ...]) -> float:
        """Latency of the network the per-parameter derived parts make up (cached)."""
        key = tuple(parts)
        if key in self.cache:
            self.cache_hits += 1
            return self.cache[key]
        value = float(self.measure(self.deriver.architecture(key)))
        if not np.isfinite(value):
            raise ValueError(f"latency measure returned {value} for a derived architecture")
        self.cache[key] = value
        self.measurements += 1
        return value

    def connection_latencies(self, lambdas: Sequence[np.ndarray]) -> Tuple[List[np.ndarray], float]:
        """``LAT_c = latency(with c) - latency(without c)`` of every λ entry, and the
        current network's latency."""
        masks = _masks(lambdas, len(self.params))
        base = self.deriver.parts(masks)
        current = self.latency(base)
        out = []
        for p, mask in enumerate(masks):
            lat = np.empty(mask.size)
            for k in range(mask.size):
                toggled = mask.copy()
                toggled[k] = not mask[k]
                other = self.latency(self.deriver.toggled(base, p, toggled))
                lat[k] = current - other if mask[k] else other - current
            out.append(lat.reshape(self.params[p].shape))
        return out, current

    def multipliers(self, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        lats, current = self.connection_latencies(lambdas)
        ratios = min_max_ratio(lats)
        flat = np.concatenate([v.reshape(-1) for v in lats])
        self.last.update({"latency": round(current, 6), "lat_min": round(float(flat.min()), 6),
                          "lat_max": round(float(flat.max()), 6)})
        if self.gamma > 0:
            return [(self.gamma0 + self.gamma * r) / self.gamma for r in ratios]
        return ratios
