"""Builders shared by the pipeline, the benchmarks and the tools: everything a run makes from
its config - data, networks in the context's op form, initialisation, the two trainers.

The registries decide: ``model.space`` gives the network (:mod:`dso_nas.spaces`), ``task.name``
its head, loss and metric (:mod:`dso_nas.tasks`), ``data.name`` the dataset
(:mod:`dso_nas.data`); the op form is decided once from ``context``
(:func:`dso_nas.engine.devices.backend_for`) and passed to every builder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..config import CfgNode
from ..data import Loaders, dataset_spec
from ..engine.devices import backend_for, check_global_batch, contexts
from ..engine.distributed import Distributed, from_config
from ..errors import ArchitectureError, CheckpointError, ConfigError, UserError
from ..models.width import find_width_multiplier
from ..ops import REFERENCE
from ..search.apgnag import APGNAG, lambda_iterates
from ..spaces import SearchSpace, get_space
from ..spaces.archfile import architecture_space
from ..tasks import Task, get_task
from . import checkpoint as ckpt

__all__ = ["Parts", "parts_of", "load_data", "initialize", "read_init", "init_width", "load_init", "build_supernet",
           "build_derived", "inference_config", "nag_trainer", "lambda_trainer", "lambda_values", "width_for",
           "check_arch_space", "retrain_arch", "retrain_schedule", "sgdr_schedule"]


@dataclass(frozen=True)
class Parts:
    """What a config selects: its space, task, contexts, op form and distributed seam."""

    space: SearchSpace
    task: Task
    ctxs: List[mx.Context]
    backend: str
    dist: Distributed


def parts_of(cfg: CfgNode) -> Parts:
    """The registered parts and devices of ``cfg`` (the op form decided here, once)."""
    ctxs, dist = contexts(cfg), from_config(cfg)
    check_global_batch(cfg, len(ctxs), dist.world)
    if dist.store is not None and cfg.train.mirror:
        raise ConfigError(f"train.mirror is one process only: it cannot run with train.kvstore={dist.kvstore}")
    backend = REFERENCE if dist.store is not None else backend_for(cfg)  # every worker computes the same forms
    return Parts(get_space(cfg.model.space), get_task(cfg.task.name), ctxs, backend, dist)


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


def initialize(net: gluon.Block, ctxs: Sequence[mx.Context], seed: int) -> None:
    """Seeded Xavier initialisation (release: gaussian, fan-in, magnitude 2); no weight decay
    on BN parameters and biases."""
    mx.random.seed(seed)
    np.random.seed(seed)
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=list(ctxs))
    net.collect_params(".*gamma|.*beta|.*bias").setattr("wd_mult", 0.0)


def read_init(cfg: CfgNode) -> Optional[Dict[str, Any]]:
    """The checkpoint ``train.init`` names (a search or retraining one), or ``None`` when unset."""
    if not cfg.train.init:
        return None
    init = ckpt.load_checkpoint(cfg.train.init)
    if not isinstance(init.get("net"), dict):
        raise CheckpointError(f"train.init={cfg.train.init} holds no network weights")
    return init


def init_width(init: Optional[Dict[str, Any]]) -> Optional[float]:
    """The width multiplier of a retraining checkpoint (its weights fit only that width), else ``None``."""
    width = (init or {}).get("width_mult")
    return float(width) if width is not None else None


def load_init(net: gluon.Block, init: Dict[str, Any], source: str) -> Tuple[int, int]:
    """Copy the weights of checkpoint ``init`` into ``net``'s parameters of the same structural
    name and shape (``train.init``: an ImageNet-trained backbone under a segmentation head,
    TPAMI §4.4); the others keep their initialisation.

    Returns ``(loaded, total)``; ``UserError`` naming ``source`` when nothing matches.
    """
    arrays = init["net"]
    params = net._collect_params_with_prefix()  # noqa: SLF001 - the structural names checkpoints use
    loaded = 0
    for key, param in params.items():
        value = arrays.get(key)
        if value is not None and tuple(value.shape) == tuple(param.shape):
            param.set_data(mx.nd.array(value, dtype=param.dtype))
            loaded += 1
    if loaded == 0:
        raise UserError(f"train.init={source}: none of its {len(arrays)} arrays matches a parameter of this network "
                        f"(same name and shape)")
    return loaded, len(params)


def build_supernet(cfg: CfgNode, parts: Parts) -> Any:
    """The supernet of the config's space with the task's head (BN γ fixed unless
    ``train.fix_gamma`` is off), in ``parts.backend``."""
    head = parts.task.head(cfg, parts.backend)
    return parts.space.build_supernet(cfg, backend=parts.backend, head=head)


def check_arch_space(arch: Any, parts: Parts) -> None:
    """``ArchitectureError`` unless ``arch`` belongs to the config's space (``model.space``)."""
    own = architecture_space(arch).name
    if own != parts.space.name:
        raise ArchitectureError(f"the architecture is a {own} architecture but model.space={parts.space.name}: "
                                f"an architecture file names its own space, drop the model.space override")


def retrain_arch(arch: Any, cfg: CfgNode, parts: Parts) -> Any:
    """The architecture retraining builds: ``arch`` itself (``retrain.layout=arch``) or its
    cells laid on ``cfg.model``'s layout (``config``: transfer, TPAMI Table 2 †), checked."""
    check_arch_space(arch, parts)
    if cfg.retrain.layout == "config":
        arch = parts.space.on_layout(arch, cfg)
    parts.space.check_arch(arch, cfg)
    return arch


def build_derived(arch: Any, cfg: CfgNode, width_mult: float, parts: Parts) -> Any:
    """The retraining network of an architecture under the config's retraining options."""
    head = parts.task.head(cfg, parts.backend, dropout=cfg.retrain.dropout)
    return parts.space.build_net(arch, cfg, width_mult=width_mult, backend=parts.backend, head=head,
                                 aux_head=parts.task.aux_head(cfg, parts.backend))


def inference_config(cfg: CfgNode) -> CfgNode:
    """``cfg`` with the retraining-only extras off (aux head, dropout, drop path): the
    network as deployed, which the latency budget times."""
    d = cfg.to_dict()
    d["retrain"].update(aux_weight=0.0, dropout=0.0, drop_path=0.0)
    return CfgNode.from_dict(d)


def nag_trainer(params, lr: float, momentum: float, wd: float, clip: float, dist: Optional[Distributed] = None,
                **extra) -> gluon.Trainer:
    """A NAG Trainer (weights) aggregating as ``dist`` says (default: one process, ``local``);
    ``lr_scheduler`` in ``extra`` replaces the constant rate."""
    opts = {"momentum": momentum, "wd": wd, **extra}
    if "lr_scheduler" not in extra:  # a schedule sets the rate itself (MXNet warns when both are given)
        opts["learning_rate"] = lr
    if clip > 0:
        opts["clip_gradient"] = clip
    return (dist or Distributed()).trainer(params, "nag", opts)


def lambda_trainer(net: Any, cfg: CfgNode, dist: Optional[Distributed] = None) -> gluon.Trainer:
    """The APG-NAG Trainer of the λ parameters (TPAMI §3.3), aggregating as ``dist`` says."""
    s = cfg.search
    opt = APGNAG(learning_rate=s.lambda_lr, momentum=s.lambda_momentum, gamma=s.gamma, clamp=s.clamp,
                 clip_gradient=cfg.train.clip_gradient if cfg.train.clip_gradient > 0 else None)
    return (dist or Distributed()).trainer(net.lambda_params(), opt)


def lambda_values(net: Any, lam_trainer: gluon.Trainer) -> List[np.ndarray]:
    """The λ iterates S(z) (exact zeros) in network order; λ′ itself before any λ step."""
    its = lambda_iterates(lam_trainer, net.lambda_params())
    return [its[p.name] for p in net.lambda_params()]


def width_for(arch: Any, cfg: CfgNode, input_hw: Tuple[int, int], parts: Parts) -> float:
    """The global width multiplier: meets ``retrain.target_params`` / ``target_flops`` if set,
    counting the space's derived net with the task's head."""
    r = cfg.retrain
    if r.target_params > 0 or r.target_flops > 0:
        head_cost = parts.task.head_cost(cfg)
        return find_width_multiplier(lambda m: parts.space.net_cost(arch, cfg, m, input_hw, head_cost)["total"],
                                     target_params=r.target_params, target_flops=r.target_flops)
    return r.width_mult


def retrain_schedule(r: Any, iters_per_epoch: int):
    """The retraining learning rate of ``retrain.schedule``: SGDR (CIFAR, §4.2), a linear
    decay from ``lr_max`` to ``lr_min`` over ``retrain.epochs`` (ImageNet, §4.3: 0.5 → 0) or
    DeepLabv3's poly decay ``(1 - t/T)^0.9`` (segmentation, §4.4)."""
    if r.schedule in ("linear", "poly"):
        from gluoncv.utils import LRScheduler  # noqa: PLC0415 - gluoncv import is slow

        return LRScheduler(r.schedule, base_lr=r.lr_max, target_lr=r.lr_min, nepochs=r.epochs,
                           iters_per_epoch=iters_per_epoch, power=0.9)
    return sgdr_schedule(r.epochs, iters_per_epoch, r.lr_max, r.lr_min, r.t0, r.t_mul)


def sgdr_schedule(epochs: int, iters_per_epoch: int, lr_max: float, lr_min: float, t0: int, t_mul: int):
    """SGDR (Loshchilov & Hutter): cosine periods T0, T0·T_mul, … covering ``epochs``, via gluoncv."""
    from gluoncv.utils import LRScheduler, LRSequential  # noqa: PLC0415 - gluoncv import is slow

    periods, total, t = [], 0, t0
    while total < epochs:
        periods.append(min(t, epochs - total))
        total += periods[-1]
        t *= t_mul
    return LRSequential([LRScheduler("cosine", base_lr=lr_max, target_lr=lr_min, nepochs=p,
                                      iters_per_epoch=iters_per_epoch) for p in periods])
