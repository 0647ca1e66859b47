"""The process's distributed kvstore (``dist_sync`` / ``dist_device_sync`` over ps-lite).

MXNet allows one distributed kvstore per worker process (a second one hangs), so
:func:`process_store` makes it once and every Trainer, check and all-reduce of the process
goes through it. Keys are integers handed out by parameter *name* in the order the ranks
register them (every rank builds the same network and registers in the same order, which
:meth:`ProcessStore.register` verifies), so any number of Trainers can share it.

Initialisation: ``KVStore.init`` with CPU arrays returns on rank 0 before its push has
reached the server, and a rank that pulls too early is answered "init N first" or, worse,
gets a value that is not rank 0's. Every registration therefore ends with
``mx.nd.waitall()`` and an explicit barrier before anything is pulled.

Nothing is updated on the servers: the Trainers keep ``update_on_kvstore`` off and update
locally from the summed gradients, so no optimizer is pickled to a server (where a custom
class that cannot be imported fails silently and the workers receive summed gradients as
weights).
"""
from __future__ import annotations

import logging
import os
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..errors import ConfigError, UserError

__all__ = ["DIST_KVSTORES", "DistError", "ProcessStore", "process_store", "fingerprint"]

LOG = logging.getLogger("dso_nas")

#: The kvstores that span processes (the rest of ``train.kvstore`` is one process).
DIST_KVSTORES = ("dist_sync", "dist_device_sync")

_STORE: Optional["ProcessStore"] = None


class DistError(UserError):
    """The workers of a distributed run disagree (different networks, weights or data)."""


def fingerprint(items: Sequence[Tuple[str, Tuple[int, ...]]]) -> np.ndarray:
    """Names and shapes as four 16-bit numbers (exact in float32, summable over workers)."""
    text = ";".join(f"{n}:{'x'.join(map(str, s))}" for n, s in items).encode()
    a, b = zlib.crc32(text), zlib.adler32(text)
    return np.array([a & 0xFFFF, a >> 16, b & 0xFFFF, b >> 16], dtype=np.float64)


class ProcessStore:
    """One distributed kvstore and its name → key table.

    Parameters
    ----------
    kind : {"dist_sync", "dist_device_sync"}
        ``dist_device_sync`` sums a worker's contexts on the device before sending.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.kv = mx.kv.create(kind)
        self.rank, self.world = int(self.kv.rank), int(self.kv.num_workers)
        self.keys: Dict[str, int] = {}
        self._shapes: Dict[str, Tuple[int, ...]] = {}

    # -- keys ------------------------------------------------------------------------------
    def register(self, named: Sequence[Tuple[str, List[mx.nd.NDArray]]], what: str = "parameters") -> None:
        """Give every new name a key, initialised with rank 0's value and pulled into ``arrays``
        on every rank (so all ranks start from rank 0's values).

        Raises :class:`DistError` when the ranks register different names or shapes.
        """
        new = sorted((n, a) for n, a in named if n not in self.keys)
        self._check_same(fingerprint([(n, tuple(a[0].shape)) for n, a in new]), f"the {what} of the network")
        if not new:
            return
        keys = list(range(len(self.keys), len(self.keys) + len(new)))
        for k, (name, arrays) in zip(keys, new):
            self.keys[name], self._shapes[name] = k, tuple(arrays[0].shape)
        self.kv.init(keys, [_plain(a[0]) for _, a in new])
        mx.nd.waitall()  # rank 0's init pushes have reached the server ...
        self.kv._barrier()  # noqa: SLF001 - ... before any rank pulls (MXNet has no public barrier)
        for k, (_, arrays) in zip(keys, new):
            self.kv.pull(k, out=list(arrays))
        mx.nd.waitall()

    def key(self, name: str) -> int:
        """The key of a registered name."""
        try:
            return self.keys[name]
        except KeyError:
            raise RuntimeError(f"{name} was not registered with the distributed kvstore "
                               "(Distributed.sync_params must run before the first step)") from None

    # -- collectives -----------------------------------------------------------------------
    def sum_arrays(self, name: str, arrays: List[mx.nd.NDArray], priority: int = 0) -> None:
        """Replace ``arrays`` (one per context of a registered name) by their sum over all
        contexts of all workers."""
        k = self.key(name)
        self.kv.push(k, arrays, priority=priority)
        self.kv.pull(k, out=arrays, priority=priority)

    def allreduce(self, name: str, values: np.ndarray) -> np.ndarray:
        """The sum over workers of a small vector (float32 on the wire)."""
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        slot = f"__{name}_{values.size}__"
        buf = mx.nd.array(values, ctx=mx.cpu())
        if slot not in self.keys:
            self.register([(slot, [mx.nd.zeros(values.shape, ctx=mx.cpu())])], what=f"collective {name!r}")
        self.sum_arrays(slot, [buf])
        return buf.asnumpy()

    def _check_same(self, values: np.ndarray, what: str) -> None:
        """:class:`DistError` unless every rank passed the same ``values`` (exact integers)."""
        slot = f"__check_{values.size}__"
        if slot not in self.keys:  # the check slot itself: registered without a check
            k = len(self.keys)
            self.keys[slot], self._shapes[slot] = k, values.shape
            self.kv.init(k, mx.nd.zeros(values.shape))
            mx.nd.waitall()
            self.kv._barrier()  # noqa: SLF001
        buf = mx.nd.array(values, ctx=mx.cpu())
        self.sum_arrays(slot, [buf])
        if not np.array_equal(buf.asnumpy().astype(np.float64), values * self.world):
            raise DistError(f"worker {self.rank} of {self.world}: the workers disagree on {what}")

    def barrier(self) -> None:
        """Wait for every worker."""
        mx.nd.waitall()
        self.kv._barrier()  # noqa: SLF001


def _plain(x: mx.nd.NDArray) -> mx.nd.NDArray:
    """A default-layout CPU copy (the kvstore cannot read oneDNN's blocked arrays)."""
    return mx.nd.array(x.asnumpy(), ctx=mx.cpu(), dtype=x.dtype)


def process_store(kind: str) -> ProcessStore:
    """The process's distributed kvstore, made on first use (``kind`` must not change).

    Raises :class:`~dso_nas.errors.ConfigError` outside a launched job (no ``DMLC_ROLE``).
    """
    global _STORE  # noqa: PLW0603 - one kvstore per process is MXNet's own limit
    if _STORE is not None:
        if _STORE.kind != kind:
            raise ConfigError(f"this process already runs on kvstore {_STORE.kind}, not {kind}")
        return _STORE
    if os.environ.get("DMLC_ROLE") != "worker":
        raise ConfigError(f"train.kvstore={kind} runs under a launcher: "
                          f"dso-nas launch --workers N -- dso-nas search ... train.kvstore={kind}")
    _STORE = ProcessStore(kind)
    LOG.info("distributed: worker %d of %d on %s", _STORE.rank, _STORE.world, kind)
    return _STORE
