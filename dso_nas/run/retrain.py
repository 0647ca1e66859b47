"""``dso-nas retrain``: train a derived architecture from scratch on all training data, evaluate.

:class:`RetrainRun` holds one run's state and saves and restores it as a
:class:`~dso_nas.run.payloads.RetrainPayload`, as :class:`~dso_nas.run.search.SearchRun`
does for the search.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, Optional, Sequence

import mxnet as mx

from ..config import CfgNode
from ..engine import StopFlag, evaluate, train_epoch
from ..engine.schedules import retrain_schedule
from ..errors import UserError, native_message
from ..runlog import write_jsonl
from ..spaces.archfile import architecture_from_dict, load_architecture, save_architecture, space_override
from ..latency import device_key
from . import checkpoint as ckpt
from .init import init_width, initialize, load_init, read_init
from .loaders import load_data
from .nets import build_derived, inference_config, retrain_arch, width_for
from .parts import Parts, parts_of
from .trainers import nag_trainer
from .isolated import isolated_latency
from .folder import ARCH_FILE, RESULT_FILE, RETRAIN_CKPT, open_run, resume_hint
from .payloads import RetrainPayload, save_payload
from ..plots import plot_run_or_warn as plot
from .report import paper_row

__all__ = ["RetrainRun", "retrain", "retrain_in"]

LOG = logging.getLogger("dso_nas")


class RetrainRun:
    """State of one retraining run: the derived net at its width, the trainer, the position."""

    def __init__(self, cfg: CfgNode, run_dir: str, arch: Any, state: Optional[RetrainPayload],
                 parts: Optional[Parts] = None):
        self.cfg, self.run_dir, self.arch = cfg, run_dir, arch
        self.parts = parts = parts or parts_of(cfg)  # the run folder's (open_run), else built here
        parts.space.check_arch(arch, cfg)  # laid on the config's layout already (retrain_in)
        self.task, self.ctxs = parts.task, parts.ctxs
        self.loaders, self.shape = load_data(cfg, retrain=True, dist=parts.dist)
        init = read_init(cfg) if state is None else None
        # a retraining checkpoint in train.init fixes the width: its weights fit only that one
        self.width = state.width_mult if state else (init_width(init) or width_for(arch, cfg, self.shape[1:], parts))
        self.net = build_derived(arch, cfg, self.width, parts)
        initialize(self.net, self.ctxs, cfg.seed)
        self.net.hybridize(static_alloc=True)
        try:
            self.net(mx.nd.zeros((1,) + tuple(self.shape), ctx=self.ctxs[0]))
        except mx.base.MXNetError as exc:
            msg = native_message(exc)
            hint = ("; the auxiliary head needs a larger map: move it (retrain.aux_stage) or drop it "
                    "(retrain.aux_weight=0)") if "aux" in str(exc) else ""
            raise UserError(f"the derived net cannot run on {tuple(self.shape)} inputs: {msg}{hint}") from None
        if init is not None:
            loaded, total = load_init(self.net, init, cfg.train.init)
            LOG.info("train.init: %d of %d parameters from %s", loaded, total, cfg.train.init)
        r = cfg.retrain
        sched = retrain_schedule(r, len(self.loaders.full))
        self.loss_fn = self.task.loss(label_smoothing=r.label_smoothing)
        self.trainer = nag_trainer(self.net.collect_params(), r.lr_max, r.momentum, r.wd, 0.0,
                                   parts.dist, lr_scheduler=sched)
        self.epoch, self.position, self.elapsed = 0, 0, 0.0
        if state is not None:
            self.restore(state)
        parts.dist.sync_params(self.net.collect_params().values(), "derived network's parameters")
        costs = parts.space.net_cost(arch, cfg, self.width, self.shape[1:], self.task.head_cost(cfg))
        self.cost, self.block_costs = costs["total"], costs["blocks"]

    def payload(self, done: bool = False, result: Optional[Dict[str, Any]] = None) -> RetrainPayload:
        """The run's state as a typed payload."""
        return RetrainPayload(config=self.cfg.to_dict(), arch=self.arch.to_dict(), width_mult=self.width,
                              net=ckpt.net_arrays(self.net), trainer=ckpt.trainer_state(self.trainer),
                              epoch=self.epoch, position=self.position, elapsed=self.elapsed, done=done,
                              result=result, seed=self.cfg.seed)

    def restore(self, state: RetrainPayload) -> None:
        """Put a saved payload back (the net must be built and warmed up)."""
        ckpt.load_net_arrays(self.net, state.net, source=f"checkpoint in {self.run_dir}")
        ckpt.restore_trainer_state(self.trainer, state.trainer)
        self.epoch, self.position, self.elapsed = state.epoch, state.position, state.elapsed

    def save(self, done: bool = False, result: Optional[Dict[str, Any]] = None) -> None:
        """Write the checkpoint (the writer process only, once the workers agree on the weights)."""
        self.parts.dist.check_params(self.net.collect_params().values(), f"retrain epoch {self.epoch}")
        if self.parts.dist.is_writer:
            save_payload(os.path.join(self.run_dir, RETRAIN_CKPT), self.payload(done, result))

    def train(self, stop: StopFlag, resume_command: str) -> None:
        """Train from the saved position to ``retrain.epochs``, a checkpoint per epoch."""
        r, cfg = self.cfg.retrain, self.cfg
        while self.epoch < r.epochs:
            self.net.set_drop_path(r.drop_path * self.epoch / r.epochs)  # linear ramp, as in DARTS' recipe
            t0 = time.time()
            res = train_epoch(self.net, self.loaders.full, self.trainer, task=self.task, epoch=self.epoch,
                              start=self.position, ctxs=self.ctxs, seed=cfg.seed, aux_weight=r.aux_weight, stop=stop,
                              show_progress=cfg.progress, desc="retrain", loss_fn=self.loss_fn,
                              rank=self.parts.dist.rank)
            self.elapsed += time.time() - t0
            if res.finished:
                self.parts.dist.sum_meters(res.meters)
            else:
                self.position = res.position
                self.save()
                raise UserError(resume_hint(resume_command, self.run_dir))
            rec = {"phase": "retrain", "epoch": self.epoch, **res.metrics["train"], "lr": self.trainer.learning_rate,
                   "seconds": self.elapsed}
            if r.eval_every and (self.epoch + 1) % r.eval_every == 0:
                rec.update({f"{self.loaders.eval_split}_{k}": v for k, v in self._evaluate().items()})
            if self.parts.dist.is_writer:
                write_jsonl(self.run_dir, rec)
            LOG.info("retrain epoch %d/%d: %s lr %.4g", self.epoch + 1, r.epochs,
                     self.task.summary(res.metrics["train"]), self.trainer.learning_rate)
            self.epoch, self.position = self.epoch + 1, 0
            self.save()

    def _evaluate(self) -> Dict[str, float]:
        """The metric on the evaluation set (in a distributed run: each worker's shard, summed)."""
        return evaluate(self.net, self.loaders.test, self.ctxs, task=self.task,
                        merge=lambda meter: self.parts.dist.sum_meters({"test": meter}))

    def result(self) -> Dict[str, Any]:
        """Evaluate on the test set (or the ``data.validation`` hold-out): the ``result.json``
        record (the metrics in :attr:`test`)."""
        self.test = test = self._evaluate()
        cost, blocks = self.cost, self.block_costs
        return {**self.task.result_fields(test, self.loaders.eval_split), "eval_split": self.loaders.eval_split,
                "params": cost.params, "flops": cost.flops, "mac": cost.mac, "width_mult": self.width,
                "block_params": [c.params for c in blocks], "block_flops": [c.flops for c in blocks],
                "retrain_seconds": self.elapsed, "scope": getattr(self.arch, "scope", ""),
                "dataset": self.cfg.data.name, "paper_row": paper_row(self.arch, self.cfg.data.name, self.cfg.task.name),
                **self.latency()}

    def latency(self) -> Dict[str, Any]:
        """Latency of the deployed net (no aux head, dropout or drop path) at batch 1 and
        ``latency.input_size`` on the run's first context, mean of ``latency.runs`` runs
        (TPAMI Table 5), when ``latency.after_retrain`` is on (experiments/imagenet)."""
        if not self.cfg.latency.after_retrain or not self.parts.dist.is_writer:
            return {}
        lat = self.cfg.latency
        shape = (1, self.shape[0], lat.input_size, lat.input_size)
        # a fresh process: this one's RecordIO decoding threads would slow the probe (run/isolated.py)
        ms = isolated_latency(self.arch, inference_config(self.cfg), self.width, self.parts.backend, shape,
                              runs=lat.runs, warmup=lat.warmup)
        return {"latency_ms": ms, "latency_input": lat.input_size,
                "latency_device": device_key(self.ctxs[0], self.parts.backend)}


def retrain(config_path: Optional[str], overrides: Sequence[str] = (), arch_path: Optional[str] = None,
            resume: Optional[str] = None) -> Dict[str, Any]:
    """Train a derived architecture from scratch on all training data and evaluate it."""
    if not resume and not arch_path:  # before any folder is made
        raise UserError("retrain needs --arch ARCH_FILE (an architecture.yaml from a search or a baseline)")
    preloaded = load_architecture(arch_path) if arch_path and not resume else None
    check = None
    if preloaded is not None:  # the file names its space; it must fit the config before a folder is made
        overrides = [space_override(preloaded), *overrides]
        check = lambda fresh, parts: retrain_arch(preloaded, fresh, parts)  # noqa: E731
    cfg, run_dir, state, parts = open_run(config_path, overrides, resume, RETRAIN_CKPT, RetrainPayload, check)
    if state is not None:
        arch = architecture_from_dict(state.arch)
    elif resume and os.path.exists(os.path.join(run_dir, ARCH_FILE)):
        arch = load_architecture(os.path.join(run_dir, ARCH_FILE))
    elif preloaded is not None:
        arch = preloaded
    else:
        raise UserError("retrain needs --arch ARCH_FILE (an architecture.yaml from a search or a baseline)")
    return retrain_in(cfg, run_dir, arch, state, parts=parts)


def retrain_in(cfg: CfgNode, run_dir: str, arch: Any, state: Optional[RetrainPayload],
               resume_command: str = "retrain", parts: Optional[Parts] = None) -> Dict[str, Any]:
    """The retraining of an opened run folder (``state``: its checkpoint, if resuming; ``parts``:
    the run's, from :func:`~dso_nas.run.folder.open_run`)."""
    if state is None:
        parts = parts or parts_of(cfg)
        arch = retrain_arch(arch, cfg, parts)  # the file written is the network built
        if parts.dist.is_writer:
            save_architecture(arch, os.path.join(run_dir, ARCH_FILE))
    elif state.done:
        LOG.info("retraining already finished in %s", run_dir)
        return state.result
    run = RetrainRun(cfg, run_dir, arch, state, parts)
    LOG.info("retraining at width %.3f: %d params, %.2fM FLOPs", run.width, run.cost.params, run.cost.flops / 1e6)
    with run.parts.dist.stop_flag() as stop:
        run.train(stop, resume_command)
    result = run.result()
    if run.parts.dist.is_writer:
        ckpt.atomic_write_bytes(os.path.join(run_dir, RESULT_FILE), json.dumps(result, indent=2).encode())
    run.save(done=True, result=result)
    if run.parts.dist.is_writer:
        plot(run_dir)
    LOG.info("%s %s with %d params", run.loaders.eval_split, run.task.summary(run.test), run.cost.params)
    return result
