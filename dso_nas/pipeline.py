"""The DSO-NAS pipeline (TPAMI §4.1): pre-train → search → derive → retrain → evaluate → report.

Each public function here is one ``dso-nas`` subcommand. A run folder holds the resolved
``config.yaml``, ``run.log``, ``log.jsonl`` (one JSON line per epoch), the atomic
checkpoint of the phase in progress, the derived ``architecture.yaml`` with its drawings,
the λ history, plots and ``result.json``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from . import checkpoint as ckpt
from .config import CfgNode, config_from_dict, diff, load_config, merge, parse_overrides, validate
from .data import Loaders, build_loaders, check_dataset, dataset_spec, load_dataset
from .engine import EpochResult, StopFlag, evaluate, search_epoch, train_epoch
from .engine.mirror import make_executors
from .errors import CheckpointError, ConfigError, UserError
from .models.arch import Architecture, Layout, derive_architecture, load_architecture, save_architecture
from .models.derived import DerivedNet, arch_cost
from .models.draw import draw_architecture
from .models.ops import impl_for_contexts, op_impl
from .models.supernet import SuperNet
from .models.width import find_width_multiplier
from .optim.apgnag import APGNAG, lambda_iterates
from .optim.budgets import make_budget
from .runlog import CONFIG_NAME, read_jsonl, setup_logging, write_jsonl

LOG = logging.getLogger("dso_nas")

SEARCH_CKPT = "search.ckpt"
RETRAIN_CKPT = "retrain.ckpt"
ARCH_FILE = "architecture.yaml"
RESULT_FILE = "result.json"


# --------------------------------------------------------------------------- run folders
def contexts(spec: str) -> List[mx.Context]:
    """``"cpu"``, ``"gpu"`` or ``"gpu:0,1"`` → MXNet contexts."""
    spec = spec.strip().lower()
    if spec == "cpu":
        return [mx.cpu()]
    if spec.startswith("gpu"):
        ids = spec[4:] if spec.startswith("gpu:") else "0"
        try:
            return [mx.gpu(int(i)) for i in ids.split(",") if i.strip()]
        except ValueError:
            raise ConfigError(f"config key 'context' must be cpu, gpu or gpu:0,1,..., got {spec!r}") from None
    raise ConfigError(f"config key 'context' must be cpu, gpu or gpu:0,1,..., got {spec!r}")


def open_run(config_path: Optional[str], overrides: Sequence[str], resume: Optional[str],
             checkpoint_name: str) -> Tuple[CfgNode, str, Optional[Dict[str, Any]]]:
    """Resolve the config and the run folder; load the checkpoint when resuming.

    A fresh run refuses a folder that already holds this phase's checkpoint (nothing is
    overwritten); a resumed run refuses a config that differs from the stored one.
    """
    if resume:
        stored_path = os.path.join(resume, CONFIG_NAME)
        if not os.path.isfile(stored_path):
            raise CheckpointError(f"cannot resume: {stored_path} not found (is {resume} a run folder?)")
        stored = load_config(stored_path)
        if config_path or overrides:
            wanted = load_config(config_path, overrides) if config_path else load_config(stored_path, overrides)
            wanted.output_dir = stored.output_dir
            changes = diff(stored.to_dict(), wanted.to_dict())
            if changes:
                raise CheckpointError(f"config changed since the run started ({'; '.join(changes[:3])}); start a new run instead")
        run_dir = resume
        path = os.path.join(run_dir, checkpoint_name)
        state = ckpt.load_checkpoint(path) if os.path.exists(path) else None
        if state is not None:
            changes = diff(state["config"], stored.to_dict())
            if changes:
                raise CheckpointError(f"checkpoint {path} was written with another config ({'; '.join(changes[:3])})")
        setup_logging(run_dir)
        LOG.info("resuming %s from %s", run_dir, "its last checkpoint" if state else "the start")
        return stored, run_dir, state
    cfg = load_config(config_path, overrides)
    run_dir = cfg.output_dir
    if os.path.exists(os.path.join(run_dir, checkpoint_name)):
        raise UserError(f"{run_dir} already holds a run: continue it with --resume {run_dir} or set output_dir=NEW_DIR")
    check_dataset(cfg.data.name, cfg.data.root)  # before anything is written
    os.makedirs(run_dir, exist_ok=True)
    ckpt.atomic_write_bytes(os.path.join(run_dir, CONFIG_NAME), cfg.dump().encode())
    setup_logging(run_dir)
    LOG.info("run folder %s", run_dir)
    return cfg, run_dir, None


def load_data(cfg: CfgNode, *, retrain: bool) -> Tuple[Loaders, Tuple[int, int, int]]:
    """The dataset's loaders (cutout only when retraining) and its ``(C, H, W)``."""
    ds = load_dataset(cfg.data.name, cfg.data.root)
    h, w, c = ds.image_shape
    if c != cfg.model.in_channels:
        raise ConfigError(f"data.name={cfg.data.name} has {c} channel(s) but model.in_channels={cfg.model.in_channels}")
    loaders = build_loaders(
        ds, batch_size=cfg.retrain.batch_size if retrain else cfg.train.batch_size,
        eval_batch_size=cfg.train.eval_batch_size, limit=cfg.data.limit, weight_fraction=cfg.data.weight_fraction,
        split=cfg.search.split, seed=cfg.seed, cutout=cfg.data.cutout if retrain else 0,
        augment=cfg.data.augment, test_limit=cfg.data.test_limit,
    )
    return loaders, (c, h, w)


def _initialize(net: gluon.Block, ctxs: Sequence[mx.Context], seed: int) -> None:
    mx.random.seed(seed)
    np.random.seed(seed)
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=list(ctxs))
    net.collect_params(".*gamma|.*beta|.*bias").setattr("wd_mult", 0.0)


def _ops_for(cfg: CfgNode):
    """Build networks inside this ``with`` in the operation forms that suit ``cfg.context``."""
    return op_impl(impl_for_contexts(contexts(cfg.context)))


def build_supernet(cfg: CfgNode) -> SuperNet:
    """The supernet of the config (BN γ fixed unless ``train.fix_gamma`` is off).

    Operations are built in the implementation that suits ``cfg.context``
    (:func:`dso_nas.models.ops.impl_for_contexts`).
    """
    m = cfg.model
    with _ops_for(cfg):
        return SuperNet(stem=m.stem, in_channels=m.in_channels, stem_channels=m.stem_channels,
                        channels=m.channels, blocks=m.blocks, levels=m.levels, ops=m.ops, scope=m.scope,
                        num_classes=m.num_classes, aggregation=m.aggregation, affine=not cfg.train.fix_gamma,
                        bn_eps=m.bn_eps, bn_momentum=m.bn_momentum)


def _nag(params, lr: float, momentum: float, wd: float, clip: float, **extra) -> gluon.Trainer:
    opts = {"momentum": momentum, "wd": wd, **extra}
    if "lr_scheduler" not in extra:  # a schedule sets the rate itself (MXNet warns when both are given)
        opts["learning_rate"] = lr
    if clip > 0:
        opts["clip_gradient"] = clip
    return gluon.Trainer(params, "nag", opts, kvstore="local")


def _lambda_trainer(net: SuperNet, cfg: CfgNode) -> gluon.Trainer:
    s = cfg.search
    opt = APGNAG(learning_rate=s.lambda_lr, momentum=s.lambda_momentum, gamma=s.gamma,
                 clip_gradient=cfg.train.clip_gradient if cfg.train.clip_gradient > 0 else None)
    return gluon.Trainer(net.lambda_params(), opt, kvstore="local")


def _lambda_values(net: SuperNet, lam_trainer: gluon.Trainer) -> List[np.ndarray]:
    """The λ iterates S(z) (exact zeros) in network order; λ′ itself before any λ step."""
    its = lambda_iterates(lam_trainer, net.lambda_params())
    return [its[p.name] for p in net.lambda_params()]


def _layout(cfg: CfgNode) -> Layout:
    return Layout.from_config(cfg.model)


# --------------------------------------------------------------------------- search
class _SearchRun:
    """State of one search run: the net, both trainers, the budget, the history."""

    def __init__(self, cfg: CfgNode, run_dir: str, state: Optional[Dict[str, Any]]):
        self.cfg, self.run_dir = cfg, run_dir
        self.ctxs = contexts(cfg.context)
        self.loaders, self.shape = load_data(cfg, retrain=False)
        self.net = build_supernet(cfg)
        _initialize(self.net, self.ctxs, cfg.seed)
        self.net.hybridize(static_alloc=True)
        self.pre_trainer = _nag(self.net.weight_params(), cfg.pretrain.lr, cfg.pretrain.momentum, cfg.pretrain.wd,
                                cfg.train.clip_gradient)
        self.w_trainer = _nag(self.net.weight_params(), cfg.search.lr, cfg.search.momentum, cfg.search.wd,
                              cfg.train.clip_gradient)
        self.lam_trainer = _lambda_trainer(self.net, cfg)
        self.phase, self.epoch, self.position = "pretrain", 0, 0
        self.history: List[List[np.ndarray]] = []
        self.unchanged, self.support = 0, None
        self.elapsed = {"pretrain": 0.0, "search": 0.0}
        self._warm_up()
        self.executors = None
        if cfg.train.mirror:  # recompute segments in the backward pass instead of storing them
            self.executors = make_executors(self.net, (cfg.train.batch_size,) + tuple(self.shape), self.ctxs,
                                            num_classes=cfg.model.num_classes)
        if state is not None:
            self._restore(state)
        self.budget = make_budget(cfg.search.budget, net=self.net, trainer=self.lam_trainer,
                                  input_shape=self.shape, gamma=cfg.search.gamma, gamma0=cfg.search.gamma0,
                                  latency_runs=cfg.latency.runs, latency_warmup=cfg.latency.warmup,
                                  latency_input=cfg.latency.input_size,
                                  latency_every=cfg.search.latency_every, ctx=self.ctxs[0])

    def _warm_up(self) -> None:
        """Run one forward so deferred shapes exist before states are restored."""
        c, h, w = self.shape
        self.net(mx.nd.zeros((1, c, h, w), ctx=self.ctxs[0]))

    def _restore(self, state: Dict[str, Any]) -> None:
        ckpt.load_net_arrays(self.net, state["net"], source=f"checkpoint in {self.run_dir}")
        for name in ("pre_trainer", "w_trainer", "lam_trainer"):
            ckpt.restore_trainer_state(getattr(self, name), state.get(name))
        self.phase, self.epoch, self.position = state["phase"], state["epoch"], state["position"]
        self.history = [list(h) for h in state["history"]]
        self.unchanged, self.support = state["unchanged"], state["support"]
        self.elapsed = dict(state["elapsed"])

    def save(self) -> None:
        trainers = {n: ckpt.trainer_state(getattr(self, n)) for n in ("pre_trainer", "w_trainer", "lam_trainer")}
        ckpt.save_checkpoint(os.path.join(self.run_dir, SEARCH_CKPT), {
            "kind": "search", "config": self.cfg.to_dict(), "net": ckpt.net_arrays(self.net),
            "phase": self.phase, "epoch": self.epoch, "position": self.position,
            "history": self.history, "unchanged": self.unchanged, "support": self.support,
            "elapsed": self.elapsed, "seed": self.cfg.seed, **trainers,
        })

    def epoch_from_position(self, phase: str, loop, stop: StopFlag, **kwargs) -> Optional[EpochResult]:
        """Run ``loop`` (train_epoch / search_epoch) for the current epoch from the saved position.

        Returns its result, or ``None`` after saving a mid-epoch checkpoint when ``stop`` was raised.
        """
        t0 = time.time()
        res = loop(self.net, epoch=self.epoch, start=self.position, ctxs=self.ctxs, seed=self.cfg.seed, stop=stop,
                   show_progress=self.cfg.progress, executors=self.executors, **kwargs)
        self.elapsed[phase] += time.time() - t0
        if res.finished:
            return res
        self.position = res.position
        self.save()
        return None

    def lambdas(self) -> List[np.ndarray]:
        """The current λ iterates, one array per λ parameter."""
        return _lambda_values(self.net, self.lam_trainer)

    def block_report(self, lambdas: List[np.ndarray]) -> Dict[str, Any]:
        masks = [lam != 0 for lam in lambdas]
        cost = self.net.cost(self.shape[1:], masks)
        return {"zero_lambda": int(sum((~m).sum() for m in masks)),
                "num_lambda": int(sum(m.size for m in masks)),
                "block_flops": [c.flops for c in cost["blocks"]],
                "block_params": [c.params for c in cost["blocks"]],
                "flops": cost["total"].flops, "params": cost["total"].params}


def _run_pretrain(run: _SearchRun, stop: StopFlag) -> bool:
    cfg = run.cfg
    while run.phase == "pretrain" and run.epoch < cfg.pretrain.epochs:
        res = run.epoch_from_position("pretrain", train_epoch, stop, loader=run.loaders.weights,
                                      trainer=run.pre_trainer, desc="pretrain")
        if res is None:
            return False
        write_jsonl(run.run_dir, {"phase": "pretrain", "epoch": run.epoch, **res.metrics["train"],
                                  "seconds": run.elapsed["pretrain"]})
        LOG.info("pretrain epoch %d/%d: loss %.4f acc %.4f", run.epoch + 1, cfg.pretrain.epochs,
                 res.metrics["train"]["loss"], res.metrics["train"]["acc"])
        run.epoch, run.position = run.epoch + 1, 0
        run.save()
    if run.phase == "pretrain":
        run.phase, run.epoch, run.position = "search", 0, 0
        run.save()
    return True


def _run_search(run: _SearchRun, stop: StopFlag) -> bool:
    cfg = run.cfg
    budget, every = run.budget, max(cfg.search.budget_every, 1)

    def refresh(g: int) -> None:
        if g % every == 0:
            budget.refresh(run.lambdas())

    while run.phase == "search" and run.epoch < cfg.search.epochs:
        budget.start_epoch(run.epoch, run.lambdas())
        res = run.epoch_from_position("search", search_epoch, stop, w_loader=run.loaders.weights,
                                      lam_loader=run.loaders.lambdas, w_trainer=run.w_trainer,
                                      lam_trainer=run.lam_trainer, ratio=cfg.search.ratio,
                                      before_lambda_step=refresh)
        if res is None:
            return False
        lambdas = run.lambdas()
        support = [np.flatnonzero(lam).tolist() for lam in lambdas]
        run.unchanged = run.unchanged + 1 if support == run.support else 0
        run.support = support
        run.history.append(lambdas)
        report = run.block_report(lambdas)
        write_jsonl(run.run_dir, {"phase": "search", "epoch": run.epoch,
                                  **{f"{k}_{m}": v for k, d in res.metrics.items() for m, v in d.items()},
                                  **report, "gamma": budget.summary(), "seconds": run.elapsed["search"]})
        LOG.info("search epoch %d/%d: D_w loss %.4f acc %.4f | D_λ loss %.4f acc %.4f | zero λ %d/%d | FLOPs %.1fM",
                 run.epoch + 1, cfg.search.epochs, res.metrics["weights"]["loss"], res.metrics["weights"]["acc"],
                 res.metrics["lambda"]["loss"], res.metrics["lambda"]["acc"], report["zero_lambda"],
                 report["num_lambda"], report["flops"] / 1e6)
        run.epoch, run.position = run.epoch + 1, 0
        if cfg.search.patience and run.unchanged >= cfg.search.patience:
            LOG.info("λ support unchanged for %d epochs: search converged", run.unchanged)
            run.phase = "derive"
        run.save()
    if run.phase == "search":
        run.phase = "derive"
        run.save()
    return True


def _derive(run: _SearchRun) -> Architecture:
    cfg = run.cfg
    lambdas = run.lambdas()
    arch = derive_architecture(lambdas, scope=cfg.model.scope, layout=_layout(cfg),
                               meta={"run": os.path.abspath(run.run_dir)})
    save_architecture(arch, os.path.join(run.run_dir, ARCH_FILE))
    np.savez_compressed(os.path.join(run.run_dir, "lambda_history.npz"),
                        **{f"epoch{e}_param{i}": lam for e, lams in enumerate(run.history) for i, lam in enumerate(lams)})
    drawings = draw_architecture(arch, run.run_dir)
    cost = arch_cost(arch, 1.0, run.shape[1:], cfg.model.num_classes)
    LOG.info("derived %s: %d params, %.2fM FLOPs at search width; drawing: %s",
             os.path.join(run.run_dir, ARCH_FILE), cost["total"].params, cost["total"].flops / 1e6, ", ".join(drawings))
    return arch


def search(config_path: Optional[str], overrides: Sequence[str] = (), resume: Optional[str] = None) -> str:
    """Pre-train the supernet on D_w, search λ (Algorithm 1), derive the architecture.

    Returns the run folder; bad input raises :class:`~dso_nas.errors.UserError` (one line).
    """
    cfg, run_dir, state = open_run(config_path, overrides, resume, SEARCH_CKPT)
    return _search_in(cfg, run_dir, state)


def _search_in(cfg: CfgNode, run_dir: str, state: Optional[Dict[str, Any]]) -> str:
    if state is not None and state["phase"] == "done":
        LOG.info("search already finished in %s", run_dir)
        return run_dir
    run = _SearchRun(cfg, run_dir, state)
    with StopFlag() as stop:
        finished = _run_pretrain(run, stop) and _run_search(run, stop)
    if not finished:
        raise UserError(f"interrupted; checkpoint saved, continue with: dso-nas search --resume {run_dir}")
    _derive(run)
    _plot(run_dir)
    run.phase = "done"
    run.save()
    return run_dir


# --------------------------------------------------------------------------- retrain
def width_for(arch: Architecture, cfg: CfgNode, input_hw: Tuple[int, int]) -> float:
    """The global width multiplier: meets ``retrain.target_params`` / ``target_flops`` if set."""
    r = cfg.retrain
    if r.target_params > 0 or r.target_flops > 0:
        return find_width_multiplier(arch, target_params=r.target_params, target_flops=r.target_flops,
                                     input_hw=input_hw, num_classes=cfg.model.num_classes)
    return r.width_mult


def build_derived(arch: Architecture, cfg: CfgNode, width_mult: float) -> DerivedNet:
    """The retraining network of an architecture under the config's retraining options."""
    r, m = cfg.retrain, cfg.model
    with _ops_for(cfg):
        return DerivedNet(arch, width_mult=width_mult, num_classes=m.num_classes, dropout=r.dropout,
                          drop_path=r.drop_path, aux_weight=r.aux_weight, affine=True,
                          bn_eps=m.bn_eps, bn_momentum=m.bn_momentum)


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


def retrain(config_path: Optional[str], overrides: Sequence[str] = (), arch_path: Optional[str] = None,
            resume: Optional[str] = None) -> Dict[str, Any]:
    """Train a derived architecture from scratch on all training data and evaluate it."""
    cfg, run_dir, state = open_run(config_path, overrides, resume, RETRAIN_CKPT)
    if state is not None:
        arch = Architecture.from_dict(state["arch"])
    elif resume and os.path.exists(os.path.join(run_dir, ARCH_FILE)):
        arch = load_architecture(os.path.join(run_dir, ARCH_FILE))
    elif arch_path:
        arch = load_architecture(arch_path)
    else:
        raise UserError("retrain needs --arch ARCH_FILE (an architecture.yaml from a search or a baseline)")
    return _retrain_in(cfg, run_dir, arch, state)


def _retrain_in(cfg: CfgNode, run_dir: str, arch: Architecture, state: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if state is None:
        save_architecture(arch, os.path.join(run_dir, ARCH_FILE))
    elif state.get("done"):
        LOG.info("retraining already finished in %s", run_dir)
        return state["result"]
    ctxs = contexts(cfg.context)
    loaders, shape = load_data(cfg, retrain=True)
    width = state["width_mult"] if state else width_for(arch, cfg, shape[1:])
    net = build_derived(arch, cfg, width)
    _initialize(net, ctxs, cfg.seed)
    net.hybridize(static_alloc=True)
    net(mx.nd.zeros((1,) + tuple(shape), ctx=ctxs[0]))
    r = cfg.retrain
    sched = sgdr_schedule(r.epochs, len(loaders.full), r.lr_max, r.lr_min, r.t0, r.t_mul)
    trainer = _nag(net.collect_params(), r.lr_max, r.momentum, r.wd, 0.0, lr_scheduler=sched)
    epoch, position, elapsed = 0, 0, 0.0
    if state is not None:
        ckpt.load_net_arrays(net, state["net"], source=f"checkpoint in {run_dir}")
        ckpt.restore_trainer_state(trainer, state["trainer"])
        epoch, position, elapsed = state["epoch"], state["position"], state["elapsed"]
    costs = arch_cost(arch, width, shape[1:], cfg.model.num_classes)
    cost, blocks = costs["total"], costs["blocks"]
    LOG.info("retraining at width %.3f: %d params, %.2fM FLOPs", width, cost.params, cost.flops / 1e6)

    def save(done: bool = False, result: Optional[Dict[str, Any]] = None) -> None:
        ckpt.save_checkpoint(os.path.join(run_dir, RETRAIN_CKPT), {
            "kind": "retrain", "config": cfg.to_dict(), "arch": arch.to_dict(), "width_mult": width,
            "net": ckpt.net_arrays(net), "trainer": ckpt.trainer_state(trainer),
            "epoch": epoch, "position": position, "elapsed": elapsed, "done": done, "result": result,
            "seed": cfg.seed})

    with StopFlag() as stop:
        while epoch < r.epochs:
            net.set_drop_path(r.drop_path * epoch / r.epochs)  # linear ramp, as in DARTS' recipe
            t0 = time.time()
            res = train_epoch(net, loaders.full, trainer, epoch=epoch, start=position, ctxs=ctxs, seed=cfg.seed,
                              aux_weight=r.aux_weight, stop=stop, show_progress=cfg.progress, desc="retrain")
            elapsed += time.time() - t0
            if not res.finished:
                position = res.position
                save()
                raise UserError(f"interrupted; checkpoint saved, continue with: dso-nas retrain --resume {run_dir}")
            rec = {"phase": "retrain", "epoch": epoch, **res.metrics["train"], "lr": trainer.learning_rate,
                   "seconds": elapsed}
            if r.eval_every and (epoch + 1) % r.eval_every == 0:
                rec.update({f"test_{k}": v for k, v in evaluate(net, loaders.test, ctxs).items()})
            write_jsonl(run_dir, rec)
            LOG.info("retrain epoch %d/%d: loss %.4f acc %.4f lr %.4g", epoch + 1, r.epochs,
                     res.metrics["train"]["loss"], res.metrics["train"]["acc"], trainer.learning_rate)
            epoch, position = epoch + 1, 0
            save()
    test = evaluate(net, loaders.test, ctxs)
    result = {"test_acc": test["acc"], "test_error": 1.0 - test["acc"], "test_loss": test["loss"],
              "params": cost.params, "flops": cost.flops, "mac": cost.mac, "width_mult": width,
              "block_params": [c.params for c in blocks], "block_flops": [c.flops for c in blocks],
              "retrain_seconds": elapsed, "scope": arch.scope, "dataset": cfg.data.name,
              "paper_row": paper_row(arch)}
    ckpt.atomic_write_bytes(os.path.join(run_dir, RESULT_FILE), json.dumps(result, indent=2).encode())
    save(done=True, result=result)
    _plot(run_dir)
    LOG.info("test accuracy %.4f (error %.2f%%) with %d params", test["acc"], 100 * (1 - test["acc"]), cost.params)
    return result


def evaluate_checkpoint(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Test accuracy of a retraining checkpoint (``overrides`` may move ``data.root``)."""
    setup_logging(None)
    state = ckpt.load_checkpoint(path)
    if state.get("kind") != "retrain":
        raise CheckpointError(f"{path} is a {state.get('kind')} checkpoint; evaluate takes a retraining checkpoint")
    cfg = config_from_dict(state["config"])
    merge(cfg, parse_overrides(overrides))
    validate(cfg)
    arch = Architecture.from_dict(state["arch"])
    ctxs = contexts(cfg.context)
    loaders, shape = load_data(cfg, retrain=True)
    net = build_derived(arch, cfg, state["width_mult"])
    net.initialize(ctx=ctxs)
    net.hybridize(static_alloc=True)
    net(mx.nd.zeros((1,) + tuple(shape), ctx=ctxs[0]))
    ckpt.load_net_arrays(net, state["net"], source=path)
    test = evaluate(net, loaders.test, ctxs)
    return {"checkpoint": path, "epoch": state["epoch"], "test_acc": test["acc"], "test_loss": test["loss"]}


# --------------------------------------------------------------------------- run, info, report
def run_all(config_path: Optional[str], overrides: Sequence[str] = (), resume: Optional[str] = None) -> str:
    """The whole chain in one folder: search (pre-train, search, derive), retrain in ``retrain/``.

    Returns the run folder (``report(run_dir)`` summarises it).
    """
    cfg, run_dir, state = open_run(config_path, overrides, resume, SEARCH_CKPT)
    _search_in(cfg, run_dir, state)
    arch = load_architecture(os.path.join(run_dir, ARCH_FILE))
    sub = os.path.join(run_dir, "retrain")
    rcfg = config_from_dict(dict(cfg.to_dict(), output_dir=sub))
    rpath = os.path.join(sub, RETRAIN_CKPT)
    rstate = ckpt.load_checkpoint(rpath) if os.path.exists(rpath) else None
    os.makedirs(sub, exist_ok=True)
    ckpt.atomic_write_bytes(os.path.join(sub, CONFIG_NAME), rcfg.dump().encode())
    setup_logging(run_dir)
    _retrain_in(rcfg, sub, rstate and Architecture.from_dict(rstate["arch"]) or arch, rstate)
    _plot(run_dir)
    return run_dir


def info(config_path: Optional[str], overrides: Sequence[str] = (), arch_path: Optional[str] = None) -> Dict[str, Any]:
    """Parameters, FLOPs, MAC and λ counts of the supernet or of a derived architecture."""
    from .models.space import num_lambda  # noqa: PLC0415

    cfg = load_config(config_path, overrides)
    side = dataset_spec(cfg.data.name).image_size
    hw = (side, side)
    out: Dict[str, Any] = {"dataset": cfg.data.name, "input": [cfg.model.in_channels, side, side]}
    if arch_path:
        arch = load_architecture(arch_path)
        width = width_for(arch, cfg, hw)
        cost = arch_cost(arch, width, hw, cfg.model.num_classes)
        out.update({"arch": arch_path, "scope": arch.scope, "width_mult": width, **cost["total"].as_dict(),
                    "blocks": len(cost["blocks"]), "block_flops": [c.flops for c in cost["blocks"]],
                    "kept_ops": [len(c.ops) for c in arch.block_cells()]})
        return out
    net = build_supernet(cfg)
    cost = net.cost(hw)
    lam_per_block = num_lambda(cfg.model.levels, len(cfg.model.ops))
    out.update({"model": "supernet", "scope": cfg.model.scope, **cost["total"].as_dict(),
                "lambda_per_block": lam_per_block,
                "num_lambda": int(sum(int(np.prod(p.shape)) for p in net.lambda_params())),
                "blocks": len(net.search_blocks()), "stages": cfg.model.stages, "channels": cfg.model.channels})
    return out


# TPAMI Table 1 (CIFAR-10): test error % (mean ± std over 5 runs) and params.
PAPER_TABLE1 = {
    "DSO-NAS-share": (2.74, 0.07, 3.0e6),
    "DSO-NAS-full": (2.83, 0.12, 3.0e6),
    "random-share": (3.48, 0.21, 3.0e6),
    "random-full": (3.46, 0.19, 3.0e6),
    "full network": (3.32, 0.05, 3.0e6),
}


def paper_row(arch: Architecture) -> str:
    """The Table-1 row an architecture is compared with: its baseline kind, else DSO-NAS-<scope>."""
    source = str(arch.meta.get("source", ""))
    return {"random-share": "random-share", "random-full": "random-full", "full": "full network"}.get(
        source, "DSO-NAS-" + arch.scope)


def report(run_dir: str) -> Tuple[str, Dict[str, Any]]:
    """Our result beside the paper's Table 1 row for the same setting, with search cost and plots."""
    result_path = next((p for p in (os.path.join(run_dir, RESULT_FILE), os.path.join(run_dir, "retrain", RESULT_FILE))
                        if os.path.exists(p)), None)
    if result_path is None and not os.path.exists(os.path.join(run_dir, "log.jsonl")):
        raise UserError(f"{run_dir} is not a run folder (no log.jsonl or {RESULT_FILE})")
    result = json.load(open(result_path)) if result_path else {}
    recs = read_jsonl(run_dir)
    seconds = {p: max([r.get("seconds", 0.0) for r in recs if r.get("phase") == p] or [0.0])
               for p in ("pretrain", "search")}
    row = result.get("paper_row") or "DSO-NAS-" + load_config(os.path.join(run_dir, CONFIG_NAME)).model.scope
    err, std, params = PAPER_TABLE1[row]
    pngs = sorted(f for f in os.listdir(run_dir) if f.endswith(".png"))
    data = {"run": run_dir, "paper_row": row, "paper_error": err, "paper_error_std": std, "paper_params": params,
            "search_hours": (seconds["pretrain"] + seconds["search"]) / 3600.0, **result,
            "drawings": [p for p in pngs if p.startswith("cell")], "plots": [p for p in pngs if not p.startswith("cell")]}
    lines = [f"run: {run_dir}",
             f"{'':32s}{'test error %':>14s}{'params':>10s}",
             f"{'paper ' + row + ' (CIFAR-10)':32s}{f'{err:.2f} ± {std:.2f}':>14s}{params / 1e6:>9.2f}M"]
    if result:
        lines.append(f"{'ours (' + result.get('dataset', '?') + ')':32s}{100 * result['test_error']:>14.2f}"
                     f"{result['params'] / 1e6:>9.2f}M")
        lines.append(f"test accuracy: {100 * result['test_acc']:.2f}%  (width multiplier {result['width_mult']:.3f}, "
                     f"{result['flops'] / 1e6:.1f}M FLOPs)")
        if result.get("block_params"):
            lines.append("derived blocks: params " + ", ".join(f"{p / 1e3:.1f}k" for p in result["block_params"])
                         + " | FLOPs " + ", ".join(f"{f / 1e6:.2f}M" for f in result["block_flops"]))
    lines.append(f"search cost here: {seconds['pretrain'] / 3600:.3f} h pre-train + {seconds['search'] / 3600:.3f} h search")
    for key in ("drawings", "plots"):
        if data[key]:
            lines.append(f"{key}: " + ", ".join(os.path.join(run_dir, p) for p in data[key]))
    return "\n".join(lines), data


def _plot(run_dir: str) -> None:
    from .plots import plot_run  # noqa: PLC0415

    try:
        plot_run(run_dir)
    except UserError as e:  # a finished run must not fail on its figures
        LOG.warning("plots not written: %s", e)
