"""``dso-nas search``: pre-train the supernet on D_w, search λ (Algorithm 1), derive.

:class:`SearchRun` holds one run's state (net, both trainers, budget, history) and saves
and restores it as a :class:`~dso_nas.run.payloads.SearchPayload`, as
:class:`~dso_nas.run.retrain.RetrainRun` does for retraining.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any, List, Optional, Sequence

import mxnet as mx
import numpy as np

from ..config import CfgNode
from ..engine import EpochResult, StopFlag, search_epoch, train_epoch
from ..engine.mirror import make_executors
from ..errors import UserError
from ..runlog import write_jsonl
from ..search.methods import get_method
from ..search.pruning import prune_lambdas
from ..search.schedule import search_rate
from ..search.budget_kinds import make_budget
from ..search.budgets import NoPenalty
from ..search.stop import converged
from ..latency import LatencyTable
from ..plots import plot_run_or_warn as plot
from ..spaces.archfile import save_architecture
from . import checkpoint as ckpt
from .folder import ARCH_FILE, SEARCH_CKPT, open_run, resume_hint
from .init import initialize, load_init, read_init
from .loaders import load_data
from .nets import build_derived, build_supernet, inference_config
from .parts import Parts, parts_of
from .payloads import SearchPayload, save_payload
from .trainers import lambda_trainer, nag_trainer, search_weight_trainer

__all__ = ["SearchRun", "search", "search_in"]

LOG = logging.getLogger("dso_nas")
TRAINERS = ("pre_trainer", "w_trainer", "lam_trainer")


class SearchRun:
    """State of one search run: the net, both trainers, the budget, the history."""

    def __init__(self, cfg: CfgNode, run_dir: str, state: Optional[SearchPayload], parts: Optional[Parts] = None):
        self.cfg, self.run_dir = cfg, run_dir
        self.parts = parts = parts or parts_of(cfg)  # the run folder's (open_run), else built here
        self.space, self.task, self.ctxs = parts.space, parts.task, parts.ctxs
        self.loaders, self.shape = load_data(cfg, retrain=False, dist=parts.dist)
        self.method = get_method(cfg.search.method)
        self.net = build_supernet(cfg, parts)
        initialize(self.net, self.ctxs, cfg.seed)
        self.method.init_arch(self.net, cfg)
        self.net.hybridize(static_alloc=True)
        dist = parts.dist
        self.pre_trainer = nag_trainer(self.net.weight_params(), cfg.pretrain.lr, cfg.pretrain.momentum,
                                       cfg.pretrain.wd, cfg.train.clip_gradient, dist)
        self.w_trainer = search_weight_trainer(self.net.weight_params(), cfg, dist)
        self.lam_trainer = lambda_trainer(self.net, cfg, dist)
        self.phase, self.epoch, self.position = "pretrain", 0, 0
        self.history: List[List[np.ndarray]] = []
        self.unchanged, self.support = 0, None
        self.elapsed = {"pretrain": 0.0, "search": 0.0}
        self._warm_up()
        if cfg.train.init and state is None:
            loaded, total = load_init(self.net, read_init(cfg), cfg.train.init)
            LOG.info("train.init: %d of %d parameters from %s", loaded, total, cfg.train.init)
        self.executors = None
        if cfg.train.mirror:  # recompute segments in the backward pass instead of storing them
            self.executors = make_executors(self.net, (cfg.train.batch_size,) + tuple(self.shape), self.ctxs,
                                            loss=self.task.loss())
        if state is not None:
            self.restore(state)
            self.drop_pruned()
        dist.sync_params(self.net.collect_params().values(), "supernet parameters")
        deployed = inference_config(cfg)  # the latency probe times the net without its training extras
        latency_net = lambda arch: build_derived(arch, deployed, 1.0, parts)  # noqa: E731
        measure = self._latency_table(latency_net) if cfg.search.budget == "latency" and dist.is_writer else None
        self.budget = NoPenalty() if not self.method.sparse else make_budget(cfg.search.budget, space=self.space, net=self.net, trainer=self.lam_trainer,
                                  input_shape=self.shape, gamma=cfg.search.gamma, gamma0=cfg.search.gamma0,
                                  latency_runs=cfg.latency.runs, latency_warmup=cfg.latency.warmup,
                                  latency_input=cfg.latency.input_size, latency_every=cfg.search.latency_every,
                                  ctx=self.ctxs[0], measure=measure, latency_net=latency_net,
                                  share=dist.from_writer, protect=self.space.protected_lambda(self.net))

    def drop_pruned(self) -> bool:
        """Leave the pruned λ's dead parts out of the computation (the space's
        :meth:`~dso_nas.spaces.base.SearchSpace.drop_pruned`) and rebuild the cached graphs."""
        if not self.method.sparse:  # nothing is pruned
            return False
        opt = self.lam_trainer.optimizer
        keep = []
        for param in self.net.lambda_params():
            pruned = opt.pruned(param.name)
            keep.append(np.ones(param.shape, bool) if pruned.size == 0 else ~pruned.reshape(param.shape))
        if not self.space.drop_pruned(self.net, keep):
            return False
        warnings.filterwarnings("ignore", message=r"Parameter .* is not used by any computation", category=UserWarning)
        self.net.hybridize(static_alloc=True)
        if self.executors is not None:
            cfg = self.cfg
            self.executors = make_executors(self.net, (cfg.train.batch_size,) + tuple(self.shape), self.ctxs,
                                            loss=self.task.loss())
        return True

    def _latency_table(self, latency_net):
        """The table-based latency model (``latency.model=table``), its missing entries measured
        now and the time counted as search time; ``None`` for ``wall_clock``."""
        cfg = self.cfg
        if cfg.latency.model != "table":
            return None
        table = LatencyTable(cfg.latency.table, self.ctxs[0], self.parts.backend, cfg.latency.runs,
                             cfg.latency.warmup)
        side = cfg.latency.input_size
        model = self.space.latency_model(self.net, table, build_net=latency_net,
                                         input_shape=(1, self.shape[0], side, side), backend=self.parts.backend)
        self.elapsed["search"] += model.build(cfg.progress)
        return model

    def _warm_up(self) -> None:
        """Run one forward so deferred shapes exist before states are restored."""
        c, h, w = self.shape
        self.net(mx.nd.zeros((1, c, h, w), ctx=self.ctxs[0]))

    # -- checkpoint ----------------------------------------------------------------------
    def payload(self) -> SearchPayload:
        """The run's state as a typed payload."""
        return SearchPayload(config=self.cfg.to_dict(), net=ckpt.net_arrays(self.net),
                             **{n: ckpt.trainer_state(getattr(self, n)) for n in TRAINERS},
                             phase=self.phase, epoch=self.epoch, position=self.position, history=self.history,
                             unchanged=self.unchanged, support=self.support, elapsed=self.elapsed,
                             seed=self.cfg.seed)

    def restore(self, state: SearchPayload) -> None:
        """Put a saved payload back (the net must be built and warmed up)."""
        ckpt.load_net_arrays(self.net, state.net, source=f"checkpoint in {self.run_dir}")
        for name in TRAINERS:
            ckpt.restore_trainer_state(getattr(self, name), getattr(state, name))
        self.phase, self.epoch, self.position = state.phase, state.epoch, state.position
        self.history = [list(h) for h in state.history]
        self.unchanged, self.support = state.unchanged, state.support
        self.elapsed = dict(state.elapsed)

    def save(self) -> None:
        """Write the checkpoint (the writer process only, once the workers agree on the weights)."""
        self.parts.dist.check_params(self.net.collect_params().values(), f"{self.phase} epoch {self.epoch}")
        if self.parts.dist.is_writer:
            save_payload(os.path.join(self.run_dir, SEARCH_CKPT), self.payload())

    # -- epochs --------------------------------------------------------------------------
    def epoch_from_position(self, phase: str, loop, stop: StopFlag, **kwargs) -> Optional[EpochResult]:
        """Run ``loop`` (train_epoch / search_epoch) for the current epoch from the saved position.

        Returns its result, or ``None`` after saving a mid-epoch checkpoint when ``stop`` was raised.
        """
        t0 = time.time()
        res = loop(self.net, task=self.task, epoch=self.epoch, start=self.position, ctxs=self.ctxs,
                   seed=self.cfg.seed, stop=stop, show_progress=self.cfg.progress, executors=self.executors,
                   rank=self.parts.dist.rank, **kwargs)
        self.elapsed[phase] += time.time() - t0
        if res.finished:
            self.parts.dist.sum_meters(res.meters)
            return res
        self.position = res.position
        self.save()
        return None

    def lambdas(self) -> List[np.ndarray]:
        """The current λ iterates (α for NASP and DARTS), one array per parameter."""
        return self.method.arch_values(self.net, self.lam_trainer)

    def search_steps(self):
        """The method's two steps of a round (built on the current graph: after a prune, again)."""
        return self.method.steps(self.net, self.w_trainer, self.lam_trainer, cfg=self.cfg, task=self.task,
                                 ctxs=self.ctxs, executors=self.executors, rank=self.parts.dist.rank)

    def log(self, record: dict) -> None:
        """Append one epoch record to ``log.jsonl`` (the writer process only)."""
        if self.parts.dist.is_writer:
            write_jsonl(self.run_dir, record)


def _run_pretrain(run: SearchRun, stop: StopFlag) -> bool:
    cfg = run.cfg
    while run.phase == "pretrain" and run.epoch < cfg.pretrain.epochs:
        res = run.epoch_from_position("pretrain", train_epoch, stop, loader=run.loaders.weights,
                                      trainer=run.pre_trainer, desc="pretrain")
        if res is None:
            return False
        run.log({"phase": "pretrain", "epoch": run.epoch, **res.metrics["train"], "seconds": run.elapsed["pretrain"]})
        LOG.info("pretrain epoch %d/%d: %s", run.epoch + 1, cfg.pretrain.epochs, run.task.summary(res.metrics["train"]))
        run.epoch, run.position = run.epoch + 1, 0
        run.save()
    if run.phase == "pretrain":
        run.phase, run.epoch, run.position = "search", 0, 0
        run.save()
    return True


def _run_search(run: SearchRun, stop: StopFlag) -> bool:
    cfg = run.cfg
    budget, every = run.budget, max(cfg.search.budget_every, 1)

    def refresh(g: int) -> None:
        if g % every == 0:
            budget.refresh(run.lambdas())

    steps = None
    while run.phase == "search" and run.epoch < cfg.search.epochs:
        t0 = time.time()
        budget.start_epoch(run.epoch, run.lambdas())
        if cfg.search.lr_schedule != "constant":
            run.w_trainer.set_learning_rate(search_rate(cfg.search, run.epoch))
        steps = steps or run.search_steps()
        run.elapsed["search"] += time.time() - t0  # latency refreshes, the twin's build count as search time
        res = run.epoch_from_position("search", search_epoch, stop, w_loader=run.loaders.weights,
                                      lam_loader=run.loaders.lambdas, w_trainer=run.w_trainer,
                                      lam_trainer=run.lam_trainer, ratio=cfg.search.ratio,
                                      before_lambda_step=refresh, steps=steps)
        if res is None:
            return False
        step_stats = steps.stats()
        lambdas = run.lambdas()
        prune = run.method.sparse and cfg.search.prune_every and (run.epoch + 1) % cfg.search.prune_every == 0
        pruned = _prune(run) if prune else None
        if pruned is not None:
            lambdas = run.lambdas()
            steps = None  # the graph changed
        support = run.method.support(run.space, cfg, lambdas)
        if run.support is None:  # a sparse method's support starts full (λ = 1), another's empty
            flips = sum(lam.size - len(s) if run.method.sparse else len(s) for lam, s in zip(lambdas, support))
        else:
            flips = int(sum(np.setxor1d(a, b).size for a, b in zip(support, run.support)))
        run.unchanged = run.unchanged + 1 if support == run.support else 0
        run.support = support
        run.history.append(lambdas)
        report = run.space.search_report(run.net, run.shape[1:], lambdas)
        run.log({"phase": "search", "epoch": run.epoch,
                 **{f"{k}_{m}": v for k, d in res.metrics.items() for m, v in d.items()},
                 **report, **step_stats, "support_flips": flips, **({"pruned_lambda": pruned} if pruned is not None else {}),
                 "gamma": budget.summary(), "seconds": run.elapsed["search"]})
        LOG.info("search epoch %d/%d: D_w %s | D_λ %s | zero λ %d/%d | support flips %d | FLOPs %.1fM", run.epoch + 1,
                 cfg.search.epochs, run.task.summary(res.metrics["weights"]), run.task.summary(res.metrics["lambda"]),
                 report["zero_lambda"], report["num_lambda"], flips, report["flops"] / 1e6)
        run.epoch, run.position = run.epoch + 1, 0
        if converged(cfg.search.until, run.unchanged, cfg.search.patience):
            LOG.info("λ support unchanged for %d epochs: search converged", run.unchanged)
            run.phase = "derive"
        elif run.space.search_done(cfg, lambdas):
            LOG.info("search epoch %d: the %s space's end of search is reached", run.epoch, run.space.name)
            run.phase = "derive"
        run.save()
    if run.phase == "search":
        run.phase = "derive"
        run.save()
    return True


def _prune(run: SearchRun) -> int:
    """Fix at zero, for good, every λ the derivation would drop (zero, or on a dead op), as the
    release's rounds of pruning do; the number of λ pruned so far."""
    lams = run.net.lambda_params()
    live = run.space.live_lambda(run.net, run.lambdas())
    total = prune_lambdas(run.lam_trainer, {p.name: ~keep for p, keep in zip(lams, live)})
    run.drop_pruned()
    LOG.info("pruned: %d of %d λ fixed at zero", total, sum(int(np.prod(p.shape)) for p in lams))
    return total


def _derive(run: SearchRun) -> Any:
    cfg = run.cfg
    meta = {"run": os.path.abspath(run.run_dir)}
    if cfg.task.name != "classification":  # the file's meta.task: the task searched on (absent: classification)
        meta["task"] = cfg.task.name
    arch = run.method.derive(run.space, cfg, run.lambdas(), meta)
    if not run.parts.dist.is_writer:
        return arch
    save_architecture(arch, os.path.join(run.run_dir, ARCH_FILE))
    np.savez_compressed(os.path.join(run.run_dir, "lambda_history.npz"),
                        **{f"epoch{e}_param{i}": lam for e, lams in enumerate(run.history) for i, lam in enumerate(lams)})
    drawings = run.space.draw(arch, run.run_dir)
    cost = run.space.net_cost(arch, cfg, 1.0, run.shape[1:], run.task.head_cost(cfg))
    LOG.info("derived %s: %d params, %.2fM FLOPs at search width%s", os.path.join(run.run_dir, ARCH_FILE),
             cost["total"].params, cost["total"].flops / 1e6, f"; drawing: {', '.join(drawings)}" if drawings else "")
    return arch


def search(config_path: Optional[str], overrides: Sequence[str] = (), resume: Optional[str] = None) -> str:
    """Pre-train the supernet on D_w, search λ (Algorithm 1), derive the architecture.

    Returns the run folder; bad input raises :class:`~dso_nas.errors.UserError` (one line).
    """
    cfg, run_dir, state, parts = open_run(config_path, overrides, resume, SEARCH_CKPT, SearchPayload)
    return search_in(cfg, run_dir, state, parts=parts)


def search_in(cfg: CfgNode, run_dir: str, state: Optional[SearchPayload], resume_command: str = "search",
              parts: Optional[Parts] = None) -> str:
    """The search of an opened run folder (``state``: its checkpoint, if resuming; ``parts``:
    the run's, from :func:`~dso_nas.run.folder.open_run`)."""
    if state is not None and state.phase == "done":
        LOG.info("search already finished in %s", run_dir)
        return run_dir
    run = SearchRun(cfg, run_dir, state, parts)
    with run.parts.dist.stop_flag() as stop:
        finished = _run_pretrain(run, stop) and _run_search(run, stop)
    if not finished:
        raise UserError(resume_hint(resume_command, run_dir))
    _derive(run)
    if run.parts.dist.is_writer:
        plot(run_dir)
    run.phase = "done"
    run.save()
    return run_dir
