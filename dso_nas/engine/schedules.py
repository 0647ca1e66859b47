"""Learning-rate schedules of retraining (``retrain.schedule``), one registry entry each.

An entry takes the ``retrain`` config node and the iterations of one epoch and returns the
per-iteration schedule (a gluoncv ``LRScheduler``: ``schedule(iteration) -> rate``). A new
schedule is one function plus one ``@SCHEDULES.register(name)`` line; the config's choices
for ``retrain.schedule`` are read from :data:`SCHEDULES`.
"""
from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry

__all__ = ["SCHEDULES", "Schedule", "retrain_schedule", "sgdr_schedule"]

#: An entry: ``(retrain config node, iterations per epoch) -> iteration -> learning rate``.
Schedule = Callable[[Any, int], Any]

SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule", "retrain.schedule")


def retrain_schedule(r: Any, iters_per_epoch: int):
    """The retraining learning rate of ``retrain.schedule``: SGDR (CIFAR, §4.2), a linear
    decay from ``lr_max`` to ``lr_min`` over ``retrain.epochs`` (ImageNet, §4.3: 0.5 → 0) or
    DeepLabv3's poly decay ``(1 - t/T)^0.9`` (segmentation, §4.4)."""
    return SCHEDULES.get(r.schedule)(r, iters_per_epoch)


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


def _decay(mode: str, r: Any, iters_per_epoch: int):
    """gluoncv's ``mode`` decay from ``lr_max`` to ``lr_min`` over ``retrain.epochs`` (poly: power 0.9)."""
    from gluoncv.utils import LRScheduler  # noqa: PLC0415 - gluoncv import is slow

    return LRScheduler(mode, base_lr=r.lr_max, target_lr=r.lr_min, nepochs=r.epochs,
                       iters_per_epoch=iters_per_epoch, power=0.9)


@SCHEDULES.register("sgdr")
def _sgdr(r: Any, iters_per_epoch: int):
    """SGDR (CIFAR, §4.2): cosine restarts of periods ``t0``, ``t0·t_mul``, … from ``lr_max`` to ``lr_min``."""
    return sgdr_schedule(r.epochs, iters_per_epoch, r.lr_max, r.lr_min, r.t0, r.t_mul)


@SCHEDULES.register("linear")
def _linear(r: Any, iters_per_epoch: int):
    """A linear decay from ``lr_max`` to ``lr_min`` over ``retrain.epochs`` (ImageNet, §4.3)."""
    return _decay("linear", r, iters_per_epoch)


@SCHEDULES.register("poly")
def _poly(r: Any, iters_per_epoch: int):
    """DeepLabv3's poly decay ``(1 - t/T)^0.9`` from ``lr_max`` to ``lr_min`` (segmentation, §4.4)."""
    return _decay("poly", r, iters_per_epoch)
