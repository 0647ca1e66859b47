"""The distributed seam: how gradients are summed, which process writes, what is shared.

``train.kvstore`` picks it. ``local`` / ``device`` are one process: Gluon Trainers sum the
contexts' gradients (on the CPU / on the devices). ``dist_sync`` / ``dist_device_sync`` are
one worker of a job started by ``dso-nas launch`` (:mod:`dso_nas.engine.launch`): the
Trainers are :class:`DistTrainer`, which sums gradients and batch rows over every context of
every worker through the process's kvstore (:mod:`dso_nas.engine.kvstore`) and then updates
locally, identically on every worker. The callers never branch on the kind: they ask
:class:`Distributed` for trainers, for the stop flag, to sum metrics, to share a
measurement, and whether they write (rank 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..tasks.base import Metric
from .kvstore import DIST_KVSTORES, DistError, ProcessStore, process_store
from .loops import StopFlag

__all__ = ["KVSTORES", "DIST_KVSTORES", "DistError", "Distributed", "DistTrainer", "from_config"]

#: The ``train.kvstore`` choices.
KVSTORES = ("local", "device") + DIST_KVSTORES

#: Relative tolerance of the weight-agreement check (float32 sums of equal arrays agree exactly;
#: the slack only absorbs the server's float32 sum of ``world`` equal checksums).
CHECK_RTOL = 1e-6


class DistTrainer(gluon.Trainer):
    """A Gluon Trainer whose gradients and batch rows are summed over all workers.

    Built with ``kvstore=None`` (so nothing runs on the servers); :meth:`step` sums the
    rows of the step and every gradient (all contexts of all workers) through ``store``,
    then updates every context locally. Parameters must be registered with the store first
    (:meth:`Distributed.sync_params`).
    """

    def __init__(self, params, optimizer, optimizer_params=None, *, store: ProcessStore):
        super().__init__(params, optimizer, optimizer_params, kvstore=None)
        self._store = store

    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """Sum gradients over workers, then update with the global number of rows."""
        rows = float(self._store.allreduce("rows", np.array([batch_size]))[0])
        self.allreduce_grads()
        self.update(rows, ignore_stale_grad)

    def allreduce_grads(self) -> None:
        """Sum each gradient over every context of every worker, in place."""
        for i, param in enumerate(self._params):
            if param.grad_req != "null":
                self._store.sum_arrays(param.name, param.list_grad(), priority=-i)


class _DistStopFlag(StopFlag):
    """A stop flag that every worker reads the same: raised when any worker was signalled."""

    def __init__(self, store: ProcessStore):
        super().__init__()
        self._store = store

    @property
    def requested(self) -> bool:  # a collective: every worker reads it at the same steps
        return bool(self._store.allreduce("stop", np.array([float(self._raised)]))[0] > 0)


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a run.

    Attributes
    ----------
    kvstore : str
        ``train.kvstore``.
    rank, world : int
        This worker's index and the number of workers (0 and 1 in one process).
    store : ProcessStore or None
        The distributed kvstore (``None`` in one process).
    """

    kvstore: str = "local"
    rank: int = 0
    world: int = 1
    store: Optional[ProcessStore] = None

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0

    def trainer(self, params, optimizer: Any, optimizer_params: Optional[dict] = None) -> gluon.Trainer:
        """A Trainer of the trainable ones of ``params`` that aggregates as ``train.kvstore`` says.

        Parameters without a gradient (BN running statistics, a fixed γ) stay out of it: a Gluon
        Trainer of several contexts broadcasts context 0's copy of every parameter it holds to
        the others at its first ``step``, after that step's forward pass has already moved each
        context's running statistics on its own part of the batch, so the other contexts lost
        that update, which the workers of a distributed job (one context each) keep.
        """
        params = [p for p in (params.values() if hasattr(params, "values") else params) if p.grad_req != "null"]
        if self.store is None:
            return gluon.Trainer(params, optimizer, optimizer_params, kvstore=self.kvstore)
        return DistTrainer(params, optimizer, optimizer_params, store=self.store)

    def sync_params(self, params: Iterable[gluon.Parameter], what: str = "parameters") -> None:
        """Start every worker from rank 0's trainable parameters, then check that they agree
        (run after the network is built, warmed up and restored; no-op in one process)."""
        if self.store is None:
            return
        params = [p for p in params if p.grad_req != "null"]
        self.store.register([(p.name, p.list_data()) for p in params], what=what)
        self.check_params(params, f"the {what} after the start")

    def check_params(self, params: Iterable[gluon.Parameter], when: str) -> None:
        """:class:`DistError` on every worker unless all hold the same trainable parameters:
        a worker that trained on other weights (a lost initialisation, an update that did not
        arrive) stops the run instead of going on with garbage."""
        if self.store is None:
            return
        params = [p for p in params if p.grad_req != "null"]
        own = np.array([v for p in params for v in _checksum(p.data())], dtype=np.float64)
        total = self.store.allreduce(f"check{len(own)}", own).astype(np.float64)
        bad = np.abs(total / self.world - own) > CHECK_RTOL * (np.abs(own) + 1.0)
        if bad.any():
            name = params[int(np.flatnonzero(bad)[0]) // 2].name
            raise DistError(f"worker {self.rank} of {self.world}: the workers' weights differ at {when} "
                            f"(first: {name}); the run stopped")

    def stop_flag(self) -> StopFlag:
        """The loops' SIGINT/SIGTERM flag (in a distributed run: raised on all workers together)."""
        return StopFlag() if self.store is None else _DistStopFlag(self.store)

    def sum_meters(self, meters: Dict[str, Metric]) -> None:
        """Sum each meter's running figures over workers in place (the log shows the whole batch)."""
        if self.store is None:
            return
        for name in sorted(meters):
            state = np.asarray(meters[name].state(), dtype=np.float64)
            meters[name].load_state(self.store.allreduce(f"meter{len(state)}", state).astype(np.float64))

    def from_writer(self, measure: Callable[[Any], float]) -> Callable[[Any], float]:
        """``measure`` run on rank 0 only, its value shared with every worker (the adaptive
        latency budget: one measurement, the same γ multipliers everywhere)."""
        if self.store is None:
            return measure
        store, writer = self.store, self.is_writer

        def shared(arg: Any) -> float:
            value = float(measure(arg)) if writer else 0.0
            return float(store.allreduce("measure", np.array([value]))[0])
        return shared

    def barrier(self) -> None:
        """Wait for every worker (no-op in one process)."""
        if self.store is not None:
            self.store.barrier()


def _checksum(x: mx.nd.NDArray) -> tuple:
    a = x.astype("float64").asnumpy().reshape(-1)
    return float(a.sum()), float(np.square(a).sum())


def from_config(cfg) -> Distributed:
    """The seam of ``cfg``: one process, or this worker of a ``dso-nas launch`` job."""
    kind = cfg.train.kvstore
    if kind not in DIST_KVSTORES:
        return Distributed(kvstore=kind)
    store = process_store(kind)
    return Distributed(kvstore=kind, rank=store.rank, world=store.world, store=store)
