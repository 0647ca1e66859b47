"""The run's data: the registered dataset's loaders (``data.name``, :mod:`dso_nas.data`),
sharded over the workers of a distributed run."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from ..config import CfgNode
from ..data import Loaders, dataset_spec
from ..engine.distributed import Distributed
from ..errors import ConfigError

__all__ = ["load_data"]


def load_data(cfg: CfgNode, *, retrain: bool, dist: Optional[Distributed] = None
              ) -> Tuple[Loaders, Tuple[int, int, int]]:
    """The dataset's loaders and its ``(C, H, W)`` (:meth:`dso_nas.data.DatasetSpec.open`):
    search (``retrain=False``) reads D_w / D_λ, retraining all training images.

    In a distributed run (``dist``) the training loaders are this rank's shard (arrays: its
    rows of every global batch; RecordIO: its part of the file); rank 0 opens first (it may
    write the RecordIO split cache), the others after it. The evaluation set is sharded too
    (the workers' figures are summed).
    """
    dist = dist or Distributed()
    spec = dataset_spec(cfg.data.name)
    if not dist.is_writer:
        dist.barrier()
    loaders, (c, h, w) = spec.open(cfg, retrain=retrain)
    if dist.is_writer:
        dist.barrier()
    if c != cfg.model.in_channels:
        raise ConfigError(f"data.name={cfg.data.name} has {c} channel(s) but model.in_channels={cfg.model.in_channels}")
    if dist.world > 1:
        loaders = dataclasses.replace(loaders, **{name: getattr(loaders, name).shard(dist.rank, dist.world)
                                                  for name in ("weights", "lambdas", "full", "test")})
    return loaders, (c, h, w)
