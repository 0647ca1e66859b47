"""Training loops: :func:`train_epoch` (pre-training and retraining), :func:`search_epoch`
(Algorithm 1: λ steps on D_λ with APG-NAG alternating with weight steps on D_w with NAG)
and :func:`evaluate`. Each takes the task (:mod:`dso_nas.tasks`): its loss, how the outputs
combine into the objective, and its metric; nothing here knows what is being predicted.

Every loop can start mid-epoch (``start``) and stops early, after a whole step, when its
:class:`StopFlag` is raised (SIGINT/SIGTERM); it then reports how far it got so the caller
can write a checkpoint that resumes exactly there. Batches are a pure function of
``(seed, epoch, index)`` (see :class:`dso_nas.data.loader.Loader`) and MXNet's RNG is
reseeded per step from the same triple, so an interrupted and resumed run repeats the same
arithmetic as an uninterrupted one.
"""
from __future__ import annotations

import math
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..errors import UserError
from ..runlog import progress
from ..tasks.base import Metric, Task
from .mirror import mirror_step

Context = mx.Context


class DivergedError(UserError):
    """The loss became NaN or infinite."""


class StopFlag:
    """Raised by SIGINT/SIGTERM; loops finish the current step, then return."""

    def __init__(self) -> None:
        self._raised = False
        self._old: Dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for (loops read it once per step)."""
        return self._raised

    def request(self) -> None:
        """Ask the loops to stop after the current step (what the signal handler does)."""
        self._raised = True

    def _handler(self, signum, frame) -> None:  # noqa: ANN001 - signal signature
        self.request()

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class EpochResult:
    """What a loop did: a meter per split and the position reached (steps or rounds)."""

    meters: Dict[str, Metric] = field(default_factory=dict)
    position: int = 0
    finished: bool = True

    @property
    def metrics(self) -> Dict[str, Dict[str, float]]:
        """Each split's figures (:meth:`Metric.result`)."""
        return {name: meter.result() for name, meter in self.meters.items()}


def step_seed(seed: int, epoch: int, index: int, stream: int = 0, rank: int = 0) -> int:
    """A 31-bit seed for MXNet's RNG at one step (drop path, dropout) of worker ``rank``
    (rank 0's is one process's: each worker draws its own masks for its part of the batch)."""
    entropy = [seed, epoch, index, stream] + ([rank] if rank else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def _split(data: mx.nd.NDArray, ctxs: Sequence[Context]) -> List[mx.nd.NDArray]:
    return gluon.utils.split_and_load(data, list(ctxs), even_split=False)


def train_step(net: gluon.Block, trainer: gluon.Trainer, task: Task, loss_fn: gluon.loss.Loss, data, label,
               ctxs: Sequence[Context], aux_weight: float = 0.0, executors: Optional[Sequence] = None, *,
               before_update: Optional[Callable[[int], None]] = None, ignore_stale_grad: bool = False) -> Metric:
    """One forward/backward/update on a batch split over ``ctxs``; returns its metric.

    With ``executors`` (:func:`dso_nas.engine.mirror.make_executors`, ``train.mirror=true``) the
    forward/backward recomputes segments instead of storing every activation.
    ``before_update(count)`` runs between the backward pass and ``trainer.step(count)`` (a search
    method's gradient hooks); ``ignore_stale_grad`` skips the Parameters the graph did not reach.
    """
    ys = _split(label, ctxs)
    count = task.step_count(data.shape[0], len(ys))  # what the summed gradient is divided by
    if executors is not None:
        pairs = mirror_step(executors, data, label, None, count)
    else:
        xs = _split(data, ctxs)
        with autograd.record():
            pairs = [task.objective(loss_fn, net(x), y, aux_weight) for x, y in zip(xs, ys)]
        autograd.backward([loss for loss, _ in pairs])
    if before_update is not None:
        before_update(count)
    trainer.step(count, ignore_stale_grad=ignore_stale_grad)
    meter = task.metric()
    for (loss, out), y in zip(pairs, ys):
        loss_sum = float(loss.sum().asscalar())
        if not math.isfinite(loss_sum):
            raise DivergedError("the loss became NaN/inf; the run stopped and the last good checkpoint is kept")
        meter.update(loss_sum, out, y)
    return meter


def fresh_grads(trainer: gluon.Trainer) -> List[mx.nd.NDArray]:
    """The gradient arrays of ``trainer``'s Parameters that a backward pass wrote since the last
    step (MXNet keeps that flag on the data array, as ``Trainer.step`` reads it)."""
    return [g for p in trainer._params if p.grad_req != "null"  # noqa: SLF001 - the Trainer's own list
            for d, g in zip(p.list_data(), p.list_grad()) if d._fresh_grad]  # noqa: SLF001


def mark_stale(trainer: gluon.Trainer) -> None:
    """Mark every gradient of ``trainer``'s Parameters as not written by a backward pass: a step
    with ``ignore_stale_grad`` then leaves alone those the next backward does not reach."""
    for p in trainer._params:  # noqa: SLF001 - the Trainer's own list
        if p.grad_req != "null":
            for d in p.list_data():
                d._fresh_grad = False  # noqa: SLF001 - MXNet's "written since the last step" flag


def clip_global_norm(trainer: gluon.Trainer, max_norm: float, count: int) -> None:
    """Scale the fresh gradients so that the L2 norm of their batch mean is at most ``max_norm``
    (PyTorch's ``clip_grad_norm_`` of NASP and DARTS; the arrays hold sums over ``count`` samples)."""
    grads = fresh_grads(trainer)
    if grads and max_norm > 0:
        gluon.utils.clip_global_norm(grads, max_norm * count, check_isfinite=False)


class SearchSteps:
    """The two steps of a search round (a search method's, :mod:`dso_nas.search.methods`): the
    architecture step on a D_λ batch and the weight step on a D_w batch. These plain steps are
    one forward/backward/update of ``net`` each (DSO-NAS's and DARTS'); ``clip_norm`` > 0 clips
    the weights' gradient to that global norm first (``search.clip_norm``)."""

    def __init__(self, net: gluon.Block, w_trainer: gluon.Trainer, arch_trainer: gluon.Trainer, *, task: Task,
                 ctxs: Sequence[Context], executors: Optional[Sequence] = None, clip_norm: float = 0.0):
        self.net, self.w_trainer, self.arch_trainer = net, w_trainer, arch_trainer
        self.task, self.ctxs, self.executors = task, list(ctxs), executors
        self.loss_fn = task.loss()
        self.clip_norm = float(clip_norm)

    def stats(self) -> Dict[str, Any]:
        """Figures of the steps since the last call, for the epoch's log record (none here)."""
        return {}

    def clip(self, count: int) -> None:
        """``before_update`` of a weight step: the global-norm clip, if any."""
        if self.clip_norm > 0:
            clip_global_norm(self.w_trainer, self.clip_norm, count)

    def arch(self, data, label) -> Metric:
        """One step of the architecture parameters on a D_λ batch."""
        return train_step(self.net, self.arch_trainer, self.task, self.loss_fn, data, label, self.ctxs,
                          executors=self.executors)

    def weights(self, data, label) -> Metric:
        """One step of the network weights on a D_w batch."""
        return train_step(self.net, self.w_trainer, self.task, self.loss_fn, data, label, self.ctxs,
                          executors=self.executors, before_update=self.clip)


def train_epoch(net: gluon.Block, loader, trainer: gluon.Trainer, *, task: Task, epoch: int, start: int = 0,
                ctxs: Sequence[Context], seed: int, aux_weight: float = 0.0,
                stop: Optional[StopFlag] = None, show_progress: bool = True, desc: str = "train",
                executors: Optional[Sequence] = None, loss_fn: Optional[gluon.loss.Loss] = None,
                rank: int = 0) -> EpochResult:
    """Train ``net`` for one epoch of ``loader`` from batch ``start`` on, with ``loss_fn``
    (default: the task's plain loss; retraining passes its label-smoothed one).

    Returns the epoch's metrics under ``"train"`` and the number of batches done.
    """
    loss_fn = loss_fn if loss_fn is not None else task.loss()
    meter = task.metric()
    total = len(loader)
    position = start
    for k, (data, label) in enumerate(progress(loader.epoch(epoch, start), total=total - start,
                                               desc=f"{desc} {epoch}", enabled=show_progress), start):
        mx.random.seed(step_seed(seed, epoch, k, rank=rank))
        meter.merge(train_step(net, trainer, task, loss_fn, data, label, ctxs, aux_weight, executors))
        position = k + 1
        if stop is not None and stop.requested and position < total:
            return EpochResult({"train": meter}, position, finished=False)
    return EpochResult({"train": meter}, position, finished=True)


def search_rounds(num_weight_batches: int, ratio: Sequence[int]) -> int:
    """Rounds in one search epoch: each round is ``y`` λ steps then ``x`` weight steps."""
    return int(math.ceil(num_weight_batches / ratio[0]))


def search_epoch(net: gluon.Block, w_loader, lam_loader, w_trainer: gluon.Trainer, lam_trainer: gluon.Trainer, *,
                 task: Task, epoch: int, start: int = 0, ratio: Sequence[int], ctxs: Sequence[Context], seed: int,
                 before_lambda_step: Optional[Callable[[int], None]] = None,
                 stop: Optional[StopFlag] = None, show_progress: bool = True,
                 executors: Optional[Sequence] = None, rank: int = 0,
                 steps: Optional[SearchSteps] = None) -> EpochResult:
    """One epoch of Algorithm 1: rounds of ``y`` λ steps on D_λ then ``x`` weight steps on D_w.

    ``steps`` are the search method's (default: the plain :class:`SearchSteps` of ``net`` and the
    two trainers).

    An epoch is one pass over D_w. The λ loader runs on across epochs: the global λ step
    ``g`` reads batch ``g % len(lam_loader)`` of its epoch ``g // len(lam_loader)``, and
    ``g`` follows from ``(epoch, round)``, so the position is just the rounds done.
    ``before_lambda_step(g)`` runs before each λ step (the budget's γ refresh).
    """
    x, y = int(ratio[0]), int(ratio[1])
    steps = steps or SearchSteps(net, w_trainer, lam_trainer, task=task, ctxs=ctxs, executors=executors)
    w_meter, lam_meter = task.metric(), task.metric()
    n_w, n_lam = len(w_loader), len(lam_loader)
    rounds = search_rounds(n_w, ratio)
    w_iter = w_loader.epoch(epoch, start * x)
    lam_iter = None
    position = start
    for r in progress(range(start, rounds), total=rounds - start, desc=f"search {epoch}", enabled=show_progress):
        for j in range(y):
            g = (epoch * rounds + r) * y + j
            lam_epoch, lam_k = divmod(g, n_lam)
            if lam_iter is None or lam_k == 0:
                lam_iter = lam_loader.epoch(lam_epoch, lam_k)
            data, label = next(lam_iter)
            if before_lambda_step is not None:
                before_lambda_step(g)
            mx.random.seed(step_seed(seed, epoch, r * (x + y) + j, 1, rank))
            lam_meter.merge(steps.arch(data, label))
        for i in range(x):
            if r * x + i >= n_w:
                break
            data, label = next(w_iter)
            mx.random.seed(step_seed(seed, epoch, r * (x + y) + y + i, 2, rank))
            w_meter.merge(steps.weights(data, label))
        position = r + 1
        if stop is not None and stop.requested and position < rounds:
            return EpochResult({"weights": w_meter, "lambda": lam_meter}, position, finished=False)
    return EpochResult({"weights": w_meter, "lambda": lam_meter}, position, finished=True)


def evaluate(net: gluon.Block, loader, ctxs: Sequence[Context], *, task: Task,
             show_progress: bool = False, merge: Optional[Callable[[Metric], None]] = None) -> Dict[str, float]:
    """The task's metric of ``net`` on every batch of ``loader`` (inference mode); ``merge``
    sees the meter before its result (a distributed run sums the workers' shards there)."""
    loss_fn = task.loss()
    meter = task.metric()
    for data, label in progress(loader.epoch(0), total=len(loader), desc="eval", enabled=show_progress):
        for x, y in zip(_split(data, ctxs), _split(label, ctxs)):
            main = task.main_output(net(x))
            meter.update(float(loss_fn(main, y).sum().asscalar()), main, y)
    if merge is not None:
        merge(meter)
    return meter.result()
