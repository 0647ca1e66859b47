"""How noisy is the λ gradient? (issue 26): its mean and spread per edge over many D_λ batches at
fixed weights, against the ℓ1 pull γ of APG-NAG.

Reads a search run folder (its resolved config and ``search.ckpt``), rebuilds the run as
``dso-nas search --resume`` would, and computes, without stepping, the gradient of the mean
D_λ loss with respect to every λ on ``--batches`` consecutive D_λ batches (training-mode
BatchNorm, as a λ step sees it). Per λ entry: the mean ``m`` and standard deviation ``s`` of
its gradient. One APG-NAG step moves λ by ``η·g`` and shrinks it by ``η·γ_i`` (``γ_i``: γ times
the budget's multiplier of the entry), so an edge is held open when ``|m| > γ_i`` and the noise
of one step is ``s`` against that threshold. Reported over the entries that are still free
(not pruned; live and zero apart):

* ``snr`` = ``|m| / s`` per batch, and ``batches_to_tell`` = ``(2 s / |m|)²``: the batches whose
  mean gradient is two standard errors away from zero;
* ``noise_over_gamma`` = ``s / γ_i``: how many times the threshold one batch's noise is;
* ``mean_over_gamma`` = ``|m| / γ_i``.

    dso-nas lambda-noise runs/fashion_mnist/search --batches 100
    dso-nas lambda-noise RUN --out docs/lambda_noise.json

The checkpoint is read, never written; BN running statistics move in this process only.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import mxnet as mx
import numpy as np
from mxnet import autograd

from ..config import load_config
from ..errors import UserError
from ..run.folder import SEARCH_CKPT
from ..run.payloads import SearchPayload, load_payload
from ..run.search import SearchRun
from ..runlog import CONFIG_NAME

__all__ = ["lambda_gradients", "thresholds", "summarize", "measure"]


def lambda_gradients(run: Any, batches: int) -> np.ndarray:
    """``(batches, n_lambda)``: the gradient of the mean loss w.r.t. every λ (all λ parameters
    flattened in order) on consecutive D_λ batches, the weights fixed."""
    params = run.net.lambda_params()
    loss_fn = run.task.loss()
    out: List[np.ndarray] = []
    epoch = 0
    while len(out) < batches:
        for data, label in run.loaders.lambdas.epoch(epoch):
            data, label = data.as_in_context(run.ctxs[0]), label.as_in_context(run.ctxs[0])
            with autograd.record():
                loss, _ = run.task.objective(loss_fn, run.net(data), label)
                loss = loss.mean()
            loss.backward()
            mx.nd.waitall()
            out.append(np.concatenate([p.grad(run.ctxs[0]).asnumpy().reshape(-1) for p in params]))
            if len(out) == batches:
                break
        epoch += 1
    return np.stack(out)


def thresholds(run: Any) -> np.ndarray:
    """``γ_i`` of every λ entry (γ times the budget's multiplier in force), flattened."""
    opt = run.lam_trainer.optimizer
    return np.concatenate([np.broadcast_to(opt.gamma * opt.gamma_scale(p.name), p.shape).reshape(-1)
                           for p in run.net.lambda_params()])


def summarize(grads: np.ndarray, lam: np.ndarray, gamma: np.ndarray, pruned: np.ndarray) -> Dict[str, Any]:
    """The statistics of the module docstring over the free entries, split into live and zero λ."""
    mean, std = grads.mean(axis=0), grads.std(axis=0, ddof=1)
    out: Dict[str, Any] = {"batches": int(grads.shape[0]), "num_lambda": int(lam.size),
                           "pruned": int(pruned.sum()), "zero_free": int(((lam == 0) & ~pruned).sum()),
                           "live": int((lam != 0).sum())}
    for name, sel in (("live", lam != 0), ("zero", (lam == 0) & ~pruned)):
        if not sel.any():
            continue
        m, s, g = np.abs(mean[sel]), std[sel], gamma[sel]
        snr = m / np.maximum(s, 1e-30)
        tell = (2.0 / np.maximum(snr, 1e-30)) ** 2
        q = lambda v: [float(x) for x in np.percentile(v, [10, 50, 90])]  # noqa: E731
        out[name] = {"entries": int(sel.sum()), "mean_abs_grad_p10_50_90": q(m), "std_grad_p10_50_90": q(s),
                     "snr_p10_50_90": q(snr), "batches_to_tell_p10_50_90": q(tell),
                     "noise_over_gamma_p10_50_90": q(s / np.maximum(g, 1e-30)) if g.max() > 0 else None,
                     "mean_over_gamma_p10_50_90": q(m / np.maximum(g, 1e-30)) if g.max() > 0 else None,
                     "held_open": int((m > g).sum()), "told_in_one_epoch": None}
    return out


def measure(run_dir: str, batches: int) -> Dict[str, Any]:
    """Rebuild the run of ``run_dir`` from its checkpoint and measure (see the module docstring)."""
    for name in (CONFIG_NAME, SEARCH_CKPT):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise UserError(f"{run_dir} is not a search run folder: {name} not found")
    cfg = load_config(os.path.join(run_dir, CONFIG_NAME), ["progress=false"])
    state = load_payload(os.path.join(run_dir, SEARCH_CKPT), SearchPayload)
    run = SearchRun(cfg, run_dir, state)
    lam = np.concatenate([v.reshape(-1) for v in run.lambdas()])
    opt = run.lam_trainer.optimizer
    pruned = np.concatenate([(opt.pruned(p.name) if opt.pruned(p.name).size else np.zeros(p.shape, bool)).reshape(-1)
                             for p in run.net.lambda_params()])
    grads = lambda_gradients(run, batches)
    result = summarize(grads, lam, thresholds(run), pruned)
    per_epoch = len(run.loaders.lambdas)
    for name in ("live", "zero"):
        if name in result:
            tell = result[name]["batches_to_tell_p10_50_90"][1]
            result[name]["told_in_one_epoch"] = bool(tell <= per_epoch)
    result.update(run=os.path.abspath(run_dir), phase=state.phase, epoch=state.epoch, lambda_batches_per_epoch=per_epoch,
                  gamma=float(opt.gamma), lambda_lr=float(cfg.search.lambda_lr))
    return result
