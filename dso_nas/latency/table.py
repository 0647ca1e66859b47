"""A per-device latency lookup table: each entry the mean batch-1 forward time of one piece.

Entries are keyed by a description of the piece (``"op:sep_conv_3x3|c16|h224|w224|s1"``) and
kept in one JSON file per device and measurement setting (``latency.runs``, ``latency.warmup``),
written atomically after every new entry: a run reuses what an earlier one measured, and an
interrupted build (Ctrl-C) keeps what it finished. The space turns the entries into the
latency of any derived network (:mod:`dso_nas.spaces.dense.latency`, TPAMI §3.4, Eq. 19).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import mxnet as mx

from ..errors import UserError
from ..paths import atomic_write_bytes, check_output, write_error
from ..runlog import progress
from .timing import wall_clock_latency

__all__ = ["LatencyTable", "Entry", "Noop", "device_key"]

LOG = logging.getLogger("dso_nas")
TABLE_VERSION = 2

#: One piece to time: ``(key, build, input_shapes)``; ``build()`` gives an uninitialized block
#: taking one input per shape.
Entry = Tuple[str, Callable[[], mx.gluon.HybridBlock], Sequence[Tuple[int, ...]]]


class Noop(mx.gluon.HybridBlock):
    """A copy of its input: the fixed cost of calling a piece on its own, which a piece inside
    the whole network does not pay (the spaces subtract it from their entries)."""

    def hybrid_forward(self, F, x):
        return F.identity(x)


def device_key(ctx: mx.Context, backend: str) -> str:
    """What the table's figures depend on: processor, threads, MXNet build, context, op form."""
    cpu = platform.processor() or platform.machine()
    return (f"{ctx.device_type}{ctx.device_id}-{cpu}-{os.cpu_count()}cpu-omp{os.environ.get('OMP_NUM_THREADS', '')}"
            f"-mxnet{mx.__version__}-{backend}").replace(" ", "_").replace("/", "_")


class LatencyTable:
    """Measured latencies (milliseconds) of pieces, cached in ``folder``.

    Parameters
    ----------
    folder : str
        Where the table files live (``latency.table``).
    ctx : Context
        Where the pieces run.
    backend : str
        The op form they are built in (part of the device key).
    runs, warmup : int
        Timed forwards averaged per entry, untimed ones before (paper: mean of 5).
    """

    def __init__(self, folder: str, ctx: mx.Context, backend: str, runs: int = 5, warmup: int = 2):
        self.ctx, self.runs, self.warmup = ctx, int(runs), int(warmup)
        self.blocked = backend == "onednn" and ctx.device_type == "cpu"  # pieces get maps as a network hands them on
        self.device, self.folder = device_key(ctx, backend), folder
        self.path = os.path.join(folder, f"{self.device}-r{self.runs}w{self.warmup}.json")
        self.entries: Dict[str, float] = {}
        self.seconds = 0.0
        if os.path.exists(self.path):
            try:
                with open(self.path, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError) as e:
                raise UserError(f"latency table {self.path} is unreadable ({e}); delete it to measure anew") from None
            if data.get("version") == TABLE_VERSION and data.get("device") == self.device:
                self.entries = {str(k): float(v) for k, v in data.get("entries", {}).items()}

    def __getitem__(self, key: str) -> float:
        return self.entries[key]

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def missing(self, entries: Iterable[Entry]) -> List[Entry]:
        """The entries not measured yet."""
        return [e for e in entries if e[0] not in self.entries]

    def measure(self, entries: Iterable[Entry], show_progress: bool = True) -> float:
        """Time every missing entry (progress bar; Ctrl-C keeps what was finished); the seconds spent."""
        todo = self.missing(entries)
        if todo:  # before the first measurement: each is saved at once
            check_output(self.folder, "latency.table")
        start = time.time()
        for key, build, shapes in progress(todo, total=len(todo), desc="latency table", enabled=show_progress):
            self.entries[key] = wall_clock_latency(build(), shapes, runs=self.runs, warmup=self.warmup,
                                                   ctx=self.ctx, blocked=self.blocked and not key.startswith("fixed:"))
            self._save()
        spent = time.time() - start
        self.seconds += spent
        if todo:
            LOG.info("latency table %s: %d entries measured in %.1f s (%d in all)", self.path, len(todo), spent,
                     len(self.entries))
        return spent

    def _save(self) -> None:
        data = {"version": TABLE_VERSION, "device": self.device, "runs": self.runs, "warmup": self.warmup,
                "batch": 1, "unit": "ms", "entries": dict(sorted(self.entries.items()))}
        try:
            atomic_write_bytes(self.path, json.dumps(data, indent=1).encode())
        except OSError as e:
            raise write_error(e, "latency.table", self.path) from None
