"""The distributed seam: which kvstore aggregates gradients, and which process writes.

``train.kvstore`` is ``local`` or ``device`` for one process (its contexts' gradients summed
by the Gluon Trainer's own kvstore), or ``dist_sync`` for several worker processes started by
``dso-nas launch`` (:mod:`dso_nas.engine.launch`) with MXNet's ps-lite servers in between.

A worker holds one dist kvstore for the whole process (MXNet cannot open a second one: it
hangs), while the pipeline has up to three Trainers, and a Gluon Trainer keys its kvstore by
its own parameter index, so two Trainers on one kvstore would collide. So in a distributed
run every Trainer is a :class:`DistTrainer`: it updates locally (``kvstore=None``, no
optimizer is pickled to the servers, where a custom class such as APG-NAG would fail in
silence), and sums its gradients across workers through the process's kvstore under one key
per parameter name, the global batch size with them. Parameters are broadcast from rank 0 and
every worker passes a barrier before the first step. Keys are initialised one at a time:
initialising a list of keys at once let a worker read a key before the server stored it
("init N first", a different key each run), as a lazily initialised kvstore did.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import mxnet as mx
from mxnet import gluon

from ..errors import ConfigError

__all__ = ["KVSTORES", "DIST_KVSTORES", "Distributed", "DistTrainer", "from_config"]

#: The ``train.kvstore`` choices: one process, or several over ps-lite (``dso-nas launch``).
DIST_KVSTORES = ("dist_sync",)
KVSTORES = ("local", "device") + DIST_KVSTORES

_PROCESS_KV: Optional[Any] = None  # the one dist kvstore of this process


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a run.

    Attributes
    ----------
    kvstore : str
        ``train.kvstore``.
    rank, world : int
        This worker's index and the number of workers.
    kv : mx.kv.KVStore or None
        The process's dist kvstore (``None`` in one process).
    """

    kvstore: str = "local"
    rank: int = 0
    world: int = 1
    kv: Any = None

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0

    def trainer(self, params, optimizer, optimizer_params=None) -> gluon.Trainer:
        """A Trainer of ``params`` for this process (a :class:`DistTrainer` across workers)."""
        if self.kv is None:
            return gluon.Trainer(params, optimizer, optimizer_params, kvstore=self.kvstore)
        return DistTrainer(params, optimizer, optimizer_params, kv=self.kv)


class DistTrainer(gluon.Trainer):
    """A Gluon Trainer that updates locally and sums gradients over the workers' kvstore,
    one integer key per parameter name for the whole process (see the module docstring);
    ``step(batch_size)`` takes this worker's batch and scales by the global one."""

    _keys: Dict[str, int] = {}  # name -> kvstore key, in the same order on every worker
    ROWS = "__batch_rows__"  # one key for every Trainer: the rows of a step, summed

    def __init__(self, params, optimizer, optimizer_params=None, *, kv):
        super().__init__(params, optimizer, optimizer_params, kvstore=None)
        self._dist_kv = kv
        self._dist_ready = False

    @classmethod
    def _new_keys(cls, names: Sequence[str]) -> List[int]:
        """Keys for ``names`` not seen before in this process (registered now)."""
        fresh = [n for n in names if n not in cls._keys]
        for n in fresh:
            cls._keys[n] = len(cls._keys)
        return [cls._keys[n] for n in fresh]

    def _trained(self):
        """The trained parameters by name: a Trainer's order may differ between processes."""
        return sorted((p for p in self._params if p.grad_req != "null"), key=lambda p: p.name)

    def _dist_init(self) -> None:
        """Register this Trainer's keys; broadcast rank 0's weights of parameters no earlier
        Trainer of the process shares (the others are in step already); barrier."""
        kv, params = self._dist_kv, self._trained()
        new = [p for p in params if p.name not in DistTrainer._keys]
        values = {}
        for p in new:
            values[p.name] = p.list_data()[0]
            values[p.name + "/grad"] = mx.nd.zeros_like(p.list_data()[0])
        if self.ROWS not in DistTrainer._keys:
            values[self.ROWS] = mx.nd.zeros((1,))
        names = list(values)
        keys = self._new_keys(names)
        for key, name in zip(keys, names):  # one key at a time: a list init raced here
            kv.init(key, values[name])  # rank 0's value is the one stored
        kv._barrier()  # noqa: SLF001 - nobody reads a key before it is stored (that raced)
        for p in new:  # every worker starts from rank 0's weights
            kv.pull(DistTrainer._keys[p.name], out=p.list_data())
        mx.nd.waitall()
        kv._barrier()  # noqa: SLF001
        self._dist_ready = True

    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        if not self._dist_ready:
            self._dist_init()
        rows = mx.nd.array([batch_size])
        self._dist_kv.pushpull(DistTrainer._keys[self.ROWS], rows, out=rows)
        super().step(float(rows.asscalar()), ignore_stale_grad)

    def _allreduce_grads(self) -> None:
        for p in self._trained():
            grads = p.list_grad()
            self._dist_kv.pushpull(DistTrainer._keys[p.name + "/grad"], grads, out=grads)


def _process_kv(kind: str) -> Any:
    global _PROCESS_KV  # noqa: PLW0603 - one per process, by MXNet's rule
    if _PROCESS_KV is None:
        if os.environ.get("DMLC_ROLE") != "worker":
            raise ConfigError(f"train.kvstore={kind} needs the processes that 'dso-nas launch --workers N -- "
                              f"dso-nas ...' starts (DMLC_ROLE is not 'worker' here)")
        _PROCESS_KV = mx.kv.create(kind)
    return _PROCESS_KV


def from_config(cfg) -> Distributed:
    """The seam of ``cfg``: one process on ``train.kvstore``, or this worker of a dist run."""
    kind = cfg.train.kvstore
    if kind not in DIST_KVSTORES:
        return Distributed(kvstore=kind)
    kv = _process_kv(kind)
    return Distributed(kvstore=kind, rank=kv.rank, world=kv.num_workers, kv=kv)
