"""Latency on the ground floor: one table type and one timing protocol.

:mod:`.timing` times a piece (Gluon block, exported symbol, onnxruntime session: batch,
warm-up, repeats); :mod:`.table` caches per-device entries in a JSON file;
:mod:`dso_nas.run.isolated` runs a timing in a fresh process. The Eq. 19 budget
(:mod:`dso_nas.search.latency`) and each space's latency model use these.
"""
from .table import Entry, LatencyTable, Noop, device_key
from .timing import mean_forward_ms, wall_clock_latency

__all__ = ["Entry", "LatencyTable", "Noop", "device_key", "mean_forward_ms", "wall_clock_latency"]
