"""The distributed seam: which kvstore aggregates gradients, and which process writes.

Today every run is one process (``world == 1``); ``train.kvstore`` is ``local`` or ``device``.
The multi-machine issue fills :func:`from_config` for ``dist_sync`` (rank and world from the
kvstore) without touching the callers: Trainers take :attr:`Distributed.kvstore`, loaders
are sharded with :attr:`rank` / :attr:`world`, and only the writer (rank 0) writes run
folders, checkpoints, logs and plots.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KVSTORES", "Distributed", "from_config"]

#: The ``train.kvstore`` choices today (one process); ``dist_sync`` joins with several machines.
KVSTORES = ("local", "device")


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a run.

    Attributes
    ----------
    kvstore : str
        The Gluon Trainers' kvstore (``"local"``, ``"device"``).
    rank, world : int
        This worker's index and the number of workers.
    """

    kvstore: str = "local"
    rank: int = 0
    world: int = 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0


def from_config(cfg) -> Distributed:
    """The seam of ``cfg``: one process on ``train.kvstore``."""
    return Distributed(kvstore=cfg.train.kvstore)
