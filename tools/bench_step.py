"""Search-step benchmark of the supernet: img/s and peak RSS per λ formulation (``make bench``).

    python tools/bench_step.py                                  # DEFAULT_RUNS
    python tools/bench_step.py --configs small --steps 3        # the quick one
    python tools/bench_step.py --configs cifar_paper --modes fused,fused_mirror
    python tools/bench_step.py --configs cifar_paper --modes fused+ops_floor   # interleaved

A config is an experiment file ``experiments/bench/<name>.yaml`` (``--configs`` also takes a
path to any experiment YAML); a mode is a set of config overrides (:data:`MODES`). The
network, the task's loss and both Trainers are built by :mod:`dso_nas.run` (parts, nets, trainers) from the
resolved config, exactly as ``dso-nas search`` builds them. The op forms of each operation
alone are timed by ``tools/bench_ops.py``.

One timed step is what a search step costs at most: forward and backward of the task's
loss on one batch, then ``step`` of both Trainers (weights: NAG; λ: APG-NAG), the net
hybridized with
``static_alloc=True`` (``--static-shape`` adds ``static_shape=True``: ~13 % faster on the
paper config, ~1.8x the peak RSS). Each
``(config, mode)`` runs in a fresh Python process (its peak RSS, ``VmHWM``, is its own): a
few warm-up steps, then ``--steps`` timed ones; the child also times a large ``mx.nd.dot``
for the machine's GEMM rate. One JSON line per ``(config, mode)``, then a table of the
ratios computed within the run. A mode ``a+b+...`` times those modes in one process, a step
of each in turn (:func:`run_interleaved`): on a shared machine their ratios are steadier
than those of separate processes.

Modes
-----
``per_edge``      ``model.aggregation=per_edge``: the authors' formulation, every λ edge a
                  ``broadcast_mul``, ``add_n`` sums.
``fused``         ``model.aggregation=fused``: one λ-matrix product per level, output λ
                  folded into the ``1 x 1`` weights (a ``1 x 1`` convolution in the oneDNN form).
``fused_mirror``  ``fused`` with ``train.mirror=true`` (:mod:`dso_nas.engine.mirror`).
``retrain``       not a search step: one retraining step (NAG, the task's loss with the aux
                  weight) of the full network's derived net (every edge kept, the space's
                  ``full`` baseline) at ``retrain.width_mult`` / ``retrain.width_divisor``
                  and ``retrain.batch_size`` - the small-net throughput of retraining.
``ops_floor``     ``model.aggregation=ops_floor``: the same operations without any λ work -
                  every operation reads the block input, the 16 outputs go straight into the
                  ``1 x 1`` reduction, BN-ReLU, residual. λ are not used (so only the weight
                  Trainer steps). A lower bound of what any λ formulation costs.
                  Its child runs with ``MXNET_ELIMINATE_COMMON_EXPR=0``: otherwise MXNet
                  merges the four identical parameter-free poolings of the same input
                  (one per level) into one, and the floor would skip 3/4 of the poolings.

FLOPs utilisation
-----------------
``step_gflop = 2 x 3 x MACs x batch``: ``MACs`` is the supernet's analytic forward cost per
image (the supernet's ``cost``: convolutions, poolings, dense; λ aggregation not counted),
``x 3`` for forward + backward (data and weight gradients), ``x 2`` FLOP per multiply-add.
``utilisation = step_gflop x steps/s / gemm_gflops``, the GEMM rate of a square
``mx.nd.dot`` (``2 n^3`` FLOP) measured in the same process with the same threads.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
import dataclasses
from typing import Dict, List, Optional, Sequence

from dso_nas import cap_onednn_isa, tune_allocator, use_all_cores
from dso_nas.errors import UserError
from toolentry import program, run_tool

LOG = logging.getLogger("bench_step")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "experiments", "bench")

#: Each mode as config overrides of the benchmark config.
MODES: Dict[str, List[str]] = {
    "per_edge": ["model.aggregation=per_edge"],
    "fused": ["model.aggregation=fused"],
    "fused_mirror": ["model.aggregation=fused", "train.mirror=true"],
    "ops_floor": ["model.aggregation=ops_floor"],
    "pruned50": ["model.aggregation=fused"],
    "pruned75": ["model.aggregation=fused"],
    "pruned50_ops": ["model.aggregation=fused"],
    "pruned75_ops": ["model.aggregation=fused"],
    "retrain": [],
}
#: The ``pruned*`` modes: ``fused`` with this share of the λ pruned for good and the dead ops and
#: edges out of the graph, as a search step after a prune (:func:`prune_share`); the zeros fall on
#: edges at random (``pruned50``) or on whole ops (``pruned50_ops``).
PRUNED = {"pruned50": (0.5, "edge"), "pruned75": (0.75, "edge"), "pruned50_ops": (0.5, "op"),
          "pruned75_ops": (0.75, "op")}
#: Modes that time the derived network's retraining step instead of the supernet's search step.
RETRAIN_MODES = ("retrain",)
#: What ``make bench`` runs when no ``--configs``/``--modes`` are given: every search-step mode
#: of the paper config and of the small one, batch 32 of the paper config in mirror mode only,
#: the paper config's fused, floor and mirror steps interleaved in one process (``a+b+c``,
#: see :func:`run_interleaved`), and the embedded default's retraining step with aligned and
#: unaligned widths.
DEFAULT_RUNS = [(c, m) for c in ("cifar_paper", "small") for m in MODES
                if m not in RETRAIN_MODES and m not in PRUNED] + [("cifar_paper", "fused+pruned50+pruned75"), ("cifar_paper", "fused+pruned50_ops+pruned75_ops"),
    
    ("cifar_paper_b32", "fused_mirror"), ("cifar_paper", "fused+ops_floor+fused_mirror"),
    ("small_derived", "retrain"), ("small_derived_unaligned", "retrain"),
    ("imagenet_paper", "fused"), ("imagenet_paper", "fused_mirror")]
#: Common-subexpression elimination switch of MXNet's graph passes (off for ``ops_floor``).
FLOOR_CSE_ENV = "MXNET_ELIMINATE_COMMON_EXPR"


def config_path(name: str) -> str:
    """``experiments/bench/<name>.yaml``, or ``name`` itself when it is a file."""
    return name if os.path.isfile(name) else os.path.join(BENCH_DIR, f"{name}.yaml")


def bench_config(name: str, mode: str, backend: Optional[str] = None):
    """The resolved config of benchmark ``name`` in ``mode`` (and its parts)."""
    from dso_nas.config import load_config
    from dso_nas.run.parts import parts_of

    cfg = load_config(config_path(name), MODES[mode] + ["progress=false"])
    parts = parts_of(cfg)
    if backend is not None:
        parts = dataclasses.replace(parts, backend=backend)
    return cfg, parts


# ----------------------------------------------------------------------------- child side


def _peak_rss_mb() -> float:
    """``VmHWM`` of this process in MiB (``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gemm_gflops(n: int = 2048, repeats: int = 3) -> float:
    """FLOP rate of a square single-precision ``mx.nd.dot`` (best of ``repeats``)."""
    import mxnet as mx
    a = mx.nd.random.uniform(shape=(n, n))
    b = mx.nd.random.uniform(shape=(n, n))
    mx.nd.dot(a, b).wait_to_read()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mx.nd.dot(a, b).wait_to_read()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def _one_process(cfg):
    """The bench times one process (a ``dist_*`` kvstore already failed in ``parts_of``)."""
    from dso_nas.engine.distributed import Distributed

    return Distributed(kvstore=cfg.train.kvstore)


def _trainers(net, cfg, with_lambda: bool):
    """The search phase's two Trainers, as the pipeline builds them (λ: ``None`` for the floor)."""
    from dso_nas.run.trainers import lambda_trainer, search_weight_trainer

    weights = search_weight_trainer(net.weight_params(), cfg, _one_process(cfg))
    return weights, (lambda_trainer(net, cfg, _one_process(cfg)) if with_lambda else None)


def _timed(step, warmup: int, steps: int) -> List[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    times = []
    for k in range(warmup + steps):
        start = time.perf_counter()
        step()
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _batch_size(cfg, mode: str) -> int:
    return cfg.retrain.batch_size if mode in RETRAIN_MODES else cfg.train.batch_size


def _batch(cfg, mode: str):
    """A fixed random batch of the config's input shape (``data.name`` gives the image size)."""
    import mxnet as mx
    import numpy as np
    from dso_nas.data import dataset_spec

    rng = np.random.RandomState(0)
    side, batch = dataset_spec(cfg.data.name).input_side(cfg), _batch_size(cfg, mode)
    data = mx.nd.array(rng.uniform(size=(batch, cfg.model.in_channels, side, side)))
    label = mx.nd.array(rng.randint(0, cfg.model.num_classes, size=batch))
    return data, label


def _retrain_stepper(cfg, parts, static_shape: bool, data, label):
    """One retraining step of the full network's derived net (mode ``retrain``)."""
    import mxnet as mx
    from mxnet import autograd
    from dso_nas.run.nets import build_derived
    from dso_nas.run.init import initialize
    from dso_nas.run.trainers import nag_trainer

    batch = data.shape[0]
    r = cfg.retrain
    arch = parts.space.baseline("full", cfg, keep_rate=1.0, seed=0)
    net = build_derived(arch, cfg, r.width_mult, parts)
    initialize(net, parts.ctxs, cfg.seed)
    net.hybridize(static_alloc=True, static_shape=static_shape)
    trainer = nag_trainer(net.collect_params(), r.lr_max, r.momentum, r.wd, 0.0, _one_process(cfg))
    loss_fn = parts.task.loss()

    def step():
        with autograd.record():
            loss, _ = parts.task.objective(loss_fn, net(data), label, r.aux_weight)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
        mx.nd.waitall()

    side = data.shape[-1]
    cost = parts.space.net_cost(arch, cfg, r.width_mult, (side, side), parts.task.head_cost(cfg))
    return step, net, {"widths": cost["widths"], "params": cost["total"].params, "_macs": cost["total"].flops}


def prune_share(net, space, share: float, by: str = "edge", seed: int = 0) -> dict:
    """Prune ``share`` of a dense supernet's λ as the release's pruning leaves them: λ zeroed,
    then every λ on an op that is dead under the derivation's rule with them (the space's
    ``live_lambda``). Which λ are zeroed: the lowest of uniform scores drawn per λ (``by="edge"``:
    zeros scattered over the edges) or per op, a λ taking the lower score of the two ops it joins
    (``by="op"``: whole ops go). The score threshold is bisected until the pruned share (closure
    included) is ``share``. The λ are set to zero and the parts they no longer reach leave the
    graph (``drop_pruned``); hybridize again afterwards. Returns the pruned share reached and
    the ops left computing."""
    import mxnet as mx
    import numpy as np
    from dso_nas.spaces.dense.graph import block_edges

    params = net.lambda_params()
    rng = np.random.RandomState(seed)
    if by == "edge":
        scores = [rng.uniform(size=p.shape) for p in params]
    else:
        edges = block_edges(net.levels, len(net.ops))
        scores = []
        for p in params:
            op_score = {node: rng.uniform() for edge in edges for node in edge}
            op_score[edges[0][0]] = op_score[edges[-1][1]] = 1.0  # the block input and output stay
            scores.append(np.array([min(op_score[a], op_score[b]) for a, b in edges]).reshape(p.shape))

    def keep_at(t):
        return space.live_lambda(net, [(s >= t).astype(np.float32) for s in scores])

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        pruned = 1 - sum(int(k.sum()) for k in keep_at(mid)) / sum(k.size for k in scores)
        lo, hi = (mid, hi) if pruned < share else (lo, mid)
    keep = keep_at(hi)
    for p, k in zip(params, keep):
        p.set_data(p.data() * mx.nd.array(k.astype(np.float32)))
    space.drop_pruned(net, keep)
    ops = [blk.plan for blk in net.search_blocks()]
    computed = sum(len(pl.first) + sum(len(lv.rows) for lv in pl.levels) if pl is not None
                   else blk.levels * blk.n_ops for pl, blk in zip(ops, net.search_blocks()))
    total_ops = sum(blk.levels * blk.n_ops for blk in net.search_blocks())
    return {"pruned_share": round(1 - sum(int(k.sum()) for k in keep) / sum(k.size for k in keep), 4),
            "ops_computed": f"{computed}/{total_ops}", "_keep": keep}


def _stepper(cfg, parts, static_shape: bool, data, label, prune=None):
    """Build the config's network and Trainers; ``(step, net, info)`` where ``step()`` runs one
    timed search step (see the module docstring) and ``info`` has the mirror plan if any."""
    import mxnet as mx
    from mxnet import autograd
    from dso_nas.engine import mirror
    from dso_nas.run.nets import build_supernet
    from dso_nas.run.init import initialize

    warnings.filterwarnings("ignore", message=".*is not used by any computation.*")
    batch = data.shape[0]
    net = build_supernet(cfg, parts)
    initialize(net, parts.ctxs, cfg.seed)
    info, executors = {}, None
    if prune:
        net(data[:1])  # deferred shapes
        info = prune_share(net, parts.space, *prune)
        keep = info.pop("_keep")
        info["_macs"] = net.cost(tuple(data.shape[-2:]), keep)["total"].flops
    net.hybridize(static_alloc=True, static_shape=static_shape)
    w_trainer, lam_trainer = _trainers(net, cfg, with_lambda=cfg.model.aggregation != "ops_floor")
    if prune:
        for p, k in zip(net.lambda_params(), keep):
            lam_trainer.optimizer.prune(p.name, ~k)
    loss_fn = parts.task.loss()
    if cfg.train.mirror:
        start = time.perf_counter()
        executors = mirror.make_executors(net, data.shape, parts.ctxs, loss=loss_fn)
        info["mirror_plan_s"] = round(time.perf_counter() - start, 2)
        info["mirror_segments"] = executors[0].plan["segments"]

    def step():
        if executors is not None:
            loss = mirror.mirror_step(executors, data, label, None, batch)[0][0]
        else:
            with autograd.record():
                loss, _ = parts.task.objective(loss_fn, net(data), label)
            loss.backward()
        w_trainer.step(batch)
        if lam_trainer is not None:
            lam_trainer.step(batch)
        loss.wait_to_read()
        mx.nd.waitall()

    return step, net, info


def run_child(config_name: str, mode: str, steps: int, warmup: int, backend: Optional[str],
              static_shape: bool = False) -> dict:
    """Build, warm up and time one ``(config, mode)`` in this process; the JSON record."""
    import numpy as np
    from dso_nas.data import dataset_spec

    cfg, parts = bench_config(config_name, mode, backend)
    batch = _batch_size(cfg, mode)
    record = dict(config=config_name, mode=mode, batch=batch, ops_backend=parts.backend, static_shape=static_shape)
    stepper = _retrain_stepper if mode in RETRAIN_MODES else _stepper
    extra = {"prune": PRUNED[mode]} if mode in PRUNED else {}
    step, net, info = stepper(cfg, parts, static_shape, *_batch(cfg, mode), **extra)
    macs = info.pop("_macs", None)
    record.update(info)
    times = _timed(step, warmup, steps)
    step_s = float(np.median(times))
    side = dataset_spec(cfg.data.name).input_side(cfg)
    macs = macs if macs is not None else net.cost((side, side))["total"].flops
    step_gflop = 2.0 * 3.0 * macs * batch / 1e9
    gemm = _gemm_gflops()
    record.update(
        img_per_s=round(batch / step_s, 3),
        step_s=round(step_s, 3),
        step_times_s=[round(t, 3) for t in times],
        peak_rss_mb=round(_peak_rss_mb(), 1),
        step_gflop=round(step_gflop, 2),
        achieved_gflops=round(step_gflop / step_s, 2),
        gemm_gflops=round(gemm, 2),
        flops_utilisation=round(step_gflop / step_s / gemm, 4),
        threads=os.environ["OMP_NUM_THREADS"],
        common_expr_elimination=os.environ.get(FLOOR_CSE_ENV, "1") != "0",
    )
    return record


def run_interleaved(config_name: str, modes: Sequence[str], rounds: int, backend: Optional[str]) -> dict:
    """Time several modes in one process, one step of each in turn, ``rounds`` times.

    Separate processes see different moments of a shared machine; here every mode sees
    the same load, so the time ratios are steadier (peak RSS is not measured: it is the
    sum of all the networks). The first round is a warm-up. Runs with common-subexpression
    elimination off, as ``ops_floor`` needs. One JSON record: median step seconds per mode
    and the ratio of each mode to the first.
    """
    import numpy as np

    configs = {mode: bench_config(config_name, mode, backend) for mode in modes}
    data, label = _batch(configs[modes[0]][0], modes[0])
    steps = {mode: _stepper(cfg, parts, False, data, label, prune=PRUNED.get(mode))[0]
             for mode, (cfg, parts) in configs.items()}
    times: Dict[str, List[float]] = {mode: [] for mode in modes}
    for r in range(rounds + 1):
        for mode, step in steps.items():
            start = time.perf_counter()
            step()
            if r:
                times[mode].append(time.perf_counter() - start)
    median = {mode: float(np.median(t)) for mode, t in times.items()}
    first = modes[0]
    return dict(config=config_name, interleaved=list(modes), batch=int(data.shape[0]), rounds=rounds,
                step_s={m: round(v, 3) for m, v in median.items()},
                step_times_s={m: [round(x, 3) for x in t] for m, t in times.items()},
                ratio_to_first={m: round(v / median[first], 3) for m, v in median.items()},
                threads=os.environ["OMP_NUM_THREADS"])


# ----------------------------------------------------------------------------- parent side


def _spawn(config: str, mode: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", config, mode,
           "--steps", str(args.steps), "--warmup", str(args.warmup)] + (
               ["--backend", args.backend] if args.backend else []) + [
           "--static-shape" if args.static_shape else "--no-static-shape"]
    LOG.info("bench: %s / %s ...", config, mode)
    env = dict(os.environ)
    if "ops_floor" in mode.split("+"):
        env[FLOOR_CSE_ENV] = "0"
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(config=config, mode=mode, img_per_s=None, peak_rss_mb=None,
                    error=f"timed out after {args.timeout} s")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return dict(config=config, mode=mode, img_per_s=None, peak_rss_mb=None,
                    error=f"exit {proc.returncode}: {' | '.join(tail)}")
    return json.loads(lines[-1])


def ratio_table(records: Sequence[dict]) -> List[str]:
    """Rows: per config and mode, img/s, peak RSS, speed-up over per_edge, time over the floor,
    RSS and time against fused (for the mirror)."""
    rows = ["config       mode          img/s   RSS MB  x per_edge  t/floor  RSS/fused  t/fused  util"]
    for config in dict.fromkeys(r["config"] for r in records):
        by_mode = {r["mode"]: r for r in records if r["config"] == config}

        def speed(mode: str) -> Optional[float]:
            return (by_mode.get(mode) or {}).get("img_per_s")

        def rss(mode: str) -> Optional[float]:
            return (by_mode.get(mode) or {}).get("peak_rss_mb")

        for mode, r in by_mode.items():
            s = r.get("img_per_s")
            cells = [_fmt(s, "{:.2f}"), _fmt(r.get("peak_rss_mb"), "{:.0f}"),
                     _fmt(_div(s, speed("per_edge")), "{:.2f}x"),
                     _fmt(_div(speed("ops_floor"), s), "{:.2f}"),
                     _fmt(_div(r.get("peak_rss_mb"), rss("fused")), "{:.2f}"),
                     _fmt(_div(speed("fused"), s), "{:.2f}"),
                     _fmt(r.get("flops_utilisation"), "{:.1%}")]
            rows.append(f"{config:<12} {mode:<12} " + " ".join(
                c.rjust(w) for c, w in zip(cells, (6, 8, 11, 8, 10, 8, 5))))
    return rows


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _fmt(value: Optional[float], pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _names(text: str, valid: Sequence[str], what: str) -> List[str]:
    names = [n for n in text.split(",") if n]
    bad = [n for n in names if any(part not in valid for part in n.split("+"))]
    if bad:
        raise UserError(f"unknown {what} {', '.join(bad)}; valid: {', '.join(valid)}")
    return names


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (1 when a measurement failed)."""
    p = argparse.ArgumentParser(prog="bench_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", help="comma-separated names of experiments/bench/*.yaml (or YAML paths); "
                   "default: see DEFAULT_RUNS")
    p.add_argument("--modes", help="comma-separated: " + ", ".join(MODES) + " (default: all)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per (config, mode)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--backend", choices=("onednn", "reference"),
                   help="op form (dso_nas.ops.backends); default: what the config's context gets")
    p.add_argument("--static-shape", action=argparse.BooleanOptionalAction, default=False,
                   help="hybridize with static_shape=True too (faster, much more memory)")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per (config, mode)")
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "MODE"), help=argparse.SUPPRESS)
    # its own process settings (the allocator's is recorded), in work
    return run_tool("bench_step", p, work, argv, settings=False)


def work(args: argparse.Namespace) -> int:
    """A child's measurement, or every (config, mode) in its own child; the JSON lines and the table."""
    use_all_cores()  # as the CLI does: before MXNet is imported here or in the children
    cap_onednn_isa()
    tuned = tune_allocator()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.child:
        config, mode = args.child
        if "+" in mode:
            record = run_interleaved(config, mode.split("+"), max(args.steps, 3), args.backend)
        else:
            record = run_child(config, mode, args.steps, args.warmup, args.backend, args.static_shape)
        record["allocator_tuned"] = tuned
        sys.stdout.write(json.dumps(record) + "\n")
        return 0
    if args.configs is None and args.modes is None:
        runs = DEFAULT_RUNS
    else:
        configs = [c for c in (args.configs or "cifar_paper,small").split(",") if c]
        missing = [c for c in configs if not os.path.isfile(config_path(c))]
        if missing:
            raise UserError(f"no benchmark config {missing[0]!r} ({config_path(missing[0])})")
        modes = _names(args.modes or ",".join(MODES), list(MODES), "mode")  # a+b: interleaved
        runs = [(c, m) for c in configs for m in modes]
    LOG.info("bench: %s, %d CPU(s), python %s", platform.processor() or platform.machine(),
             os.cpu_count(), platform.python_version())
    records = []
    for config, mode in runs:
        record = _spawn(config, mode, args)
        records.append(record)
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    sys.stdout.write("\n".join(ratio_table([r for r in records if "interleaved" not in r]))
                     + "\n")
    for r in records:
        if "interleaved" in r and "ratio_to_first" in r:
            sys.stdout.write(f"{r['config']} interleaved, {r['rounds']} rounds: " + ", ".join(
                f"{m} {r['step_s'][m]:.2f} s ({r['ratio_to_first'][m]:.2f}x)"
                for m in r["interleaved"]) + "\n")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    program(main)
