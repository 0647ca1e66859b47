"""Search-step benchmark of the supernet: img/s and peak RSS per λ formulation (``make bench``).

    python tools/bench_step.py                                  # DEFAULT_RUNS
    python tools/bench_step.py --configs small --steps 3        # the quick one
    python tools/bench_step.py --configs cifar_paper --modes fused,fused_mirror
    python tools/bench_step.py --configs cifar_paper --modes fused+ops_floor   # interleaved
    python tools/bench_step.py --micro                          # fast vs reference ops

One timed step is what a search step costs at most: forward and backward of the
softmax cross-entropy on one batch, then ``step`` of both Trainers (weights: NAG; λ:
APG-NAG), as ``dso_nas.pipeline`` builds them, the net hybridized with
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
``per_edge``      the authors' formulation: every λ edge a ``broadcast_mul``, ``add_n`` sums.
``fused``         one λ-matrix product per level, output λ folded into the ``1 x 1`` weights
                  (the default; a ``1 x 1`` convolution with the ``"fast"`` operations).
``fused_mirror``  ``fused`` trained through :mod:`dso_nas.engine.mirror` (recomputation).
``ops_floor``     the same operations without any λ work: every operation reads the block
                  input, the 16 outputs are concatenated straight into the ``1 x 1``
                  reduction (plain weights), BN-ReLU, residual. λ are not used (so only
                  the weight Trainer steps). A lower bound of what any λ formulation costs.
                  Its child runs with ``MXNET_ELIMINATE_COMMON_EXPR=0``: otherwise MXNet
                  merges the four identical parameter-free poolings of the same input
                  (one per level) into one, and the floor would skip 3/4 of the poolings.

FLOPs utilisation
-----------------
``step_gflop = 2 x 3 x MACs x batch``: ``MACs`` is the supernet's analytic forward cost per
image (:meth:`SuperNet.cost`: convolutions, poolings, dense; λ aggregation not counted),
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
import types
import warnings
from typing import Dict, List, Optional, Sequence

from dso_nas import tune_allocator, use_all_cores

LOG = logging.getLogger("bench_step")

MODES = ("per_edge", "fused", "fused_mirror", "ops_floor")
OPS4 = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")

#: Benchmark configurations: the paper's CIFAR-10 full supernet and a one-block-per-stage
#: version of it that runs in seconds.
CONFIGS: Dict[str, dict] = {
    "cifar_paper": dict(channels=(48, 96, 192), blocks=(8, 8, 8), batch=16),
    "small": dict(channels=(48, 96, 192), blocks=(1, 1, 1), batch=16),
    "cifar_paper_b32": dict(channels=(48, 96, 192), blocks=(8, 8, 8), batch=32),
}
#: What ``make bench`` runs when no ``--configs``/``--modes`` are given: every mode of the
#: first two configs, batch 32 of the paper config in mirror mode only (the issue's "fits
#: in 24 GB" check; without mirror it would need ~12 GB), and the paper config's fused,
#: floor and mirror steps interleaved in one process (``a+b+c``, see :func:`run_interleaved`).
DEFAULT_RUNS = [(c, m) for c in ("cifar_paper", "small") for m in MODES] + [
    ("cifar_paper_b32", "fused_mirror"), ("cifar_paper", "fused+ops_floor+fused_mirror")]
#: Common-subexpression elimination switch of MXNet's graph passes (off for ``ops_floor``).
FLOOR_CSE_ENV = "MXNET_ELIMINATE_COMMON_EXPR"
COMMON = dict(stem="cifar", in_channels=3, levels=4, ops=OPS4, scope="full", num_classes=10,
              image=(32, 32))


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


def _floor_forward(self, F, x, lam, reduce_weight):
    """:data:`MODES` ``ops_floor``: the block's operations and reduction, no λ work."""
    del lam
    merged = F.concat(*[op(x) for op in self._op_blocks], dim=1)
    y = F.Convolution(merged, weight=reduce_weight, kernel=(1, 1), num_filter=self.channels,
                      no_bias=True)
    return self.reduce_bn(y) + x


def _build(config: dict, mode: str, impl: str):
    import mxnet as mx
    from dso_nas.models.ops import op_impl
    from dso_nas.models.supernet import SuperNet

    with op_impl(impl):
        net = SuperNet(stem=COMMON["stem"], in_channels=COMMON["in_channels"],
                       stem_channels=config["channels"][0], channels=config["channels"],
                       blocks=config["blocks"], levels=COMMON["levels"], ops=COMMON["ops"],
                       scope=COMMON["scope"], num_classes=COMMON["num_classes"],
                       aggregation="per_edge" if mode == "per_edge" else "fused")
    if mode == "ops_floor":
        for block in net.search_blocks():
            block.hybrid_forward = types.MethodType(_floor_forward, block)
    mx.random.seed(0)
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    net.collect_params(".*gamma|.*beta|.*bias").setattr("wd_mult", 0.0)
    return net


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


def _trainers(net, with_lambda: bool):
    """The search phase's two Trainers (weights: NAG; λ: APG-NAG, or ``None``)."""
    from mxnet import gluon
    from dso_nas.optim.apgnag import APGNAG

    weights = gluon.Trainer(net.weight_params(), "nag",
                            {"learning_rate": 0.1, "momentum": 0.9, "wd": 3e-4}, kvstore="local")
    if not with_lambda:
        return weights, None
    lam = gluon.Trainer(net.lambda_params(), APGNAG(learning_rate=0.1, momentum=0.9, gamma=1e-3),
                        kvstore="local")
    return weights, lam


def _timed(step, warmup: int, steps: int) -> List[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    times = []
    for k in range(warmup + steps):
        start = time.perf_counter()
        step()
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _batch(batch: int):
    """A fixed random batch of the benchmark's input shape."""
    import mxnet as mx
    import numpy as np

    rng = np.random.RandomState(0)
    height, width = COMMON["image"]
    data = mx.nd.array(rng.uniform(size=(batch, COMMON["in_channels"], height, width)))
    label = mx.nd.array(rng.randint(0, COMMON["num_classes"], size=batch))
    return data, label


def _stepper(config: dict, mode: str, impl: str, static_shape: bool, data, label):
    """Build ``mode``'s network and Trainers; ``(step, net, info)`` where ``step()`` runs one
    timed search step (see the module docstring) and ``info`` has the mirror plan if any."""
    import mxnet as mx
    from mxnet import autograd, gluon
    from dso_nas.engine import mirror

    warnings.filterwarnings("ignore", message=".*is not used by any computation.*")
    batch = data.shape[0]
    net = _build(config, mode, impl)
    net.hybridize(static_alloc=True, static_shape=static_shape)
    w_trainer, lam_trainer = _trainers(net, with_lambda=mode != "ops_floor")
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    info, executors = {}, None
    if mode == "fused_mirror":
        start = time.perf_counter()
        executors = mirror.make_executors(net, data.shape, [mx.cpu()],
                                          num_classes=COMMON["num_classes"])
        info["mirror_plan_s"] = round(time.perf_counter() - start, 2)
        info["mirror_segments"] = executors[0].plan["segments"]

    def step():
        if executors is not None:
            loss = mirror.mirror_step(executors, data, label, None, batch)[0][0]
        else:
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
        w_trainer.step(batch)
        if lam_trainer is not None:
            lam_trainer.step(batch)
        loss.wait_to_read()
        mx.nd.waitall()

    return step, net, info


def run_child(config_name: str, mode: str, steps: int, warmup: int, impl: str,
              static_shape: bool = False) -> dict:
    """Build, warm up and time one ``(config, mode)`` in this process; the JSON record."""
    import numpy as np

    config = CONFIGS[config_name]
    batch = config["batch"]
    record = dict(config=config_name, mode=mode, batch=batch, ops_impl=impl,
                  static_shape=static_shape)
    step, net, info = _stepper(config, mode, impl, static_shape, *_batch(batch))
    record.update(info)
    times = _timed(step, warmup, steps)
    step_s = float(np.median(times))
    macs = net.cost(COMMON["image"])["total"].flops
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


def run_interleaved(config_name: str, modes: Sequence[str], rounds: int, impl: str) -> dict:
    """Time several modes in one process, one step of each in turn, ``rounds`` times.

    Separate processes see different moments of a shared machine; here every mode sees
    the same load, so the time ratios are steadier (peak RSS is not measured: it is the
    sum of all the networks). The first round is a warm-up. Runs with common-subexpression
    elimination off, as ``ops_floor`` needs. One JSON record: median step seconds per mode
    and the ratio of each mode to the first.
    """
    import numpy as np

    config = CONFIGS[config_name]
    data, label = _batch(config["batch"])
    steps = {mode: _stepper(config, mode, impl, False, data, label)[0] for mode in modes}
    times: Dict[str, List[float]] = {mode: [] for mode in modes}
    for r in range(rounds + 1):
        for mode, step in steps.items():
            start = time.perf_counter()
            step()
            if r:
                times[mode].append(time.perf_counter() - start)
    median = {mode: float(np.median(t)) for mode, t in times.items()}
    first = modes[0]
    return dict(config=config_name, interleaved=list(modes), batch=config["batch"], rounds=rounds,
                step_s={m: round(v, 3) for m, v in median.items()},
                step_times_s={m: [round(x, 3) for x in t] for m, t in times.items()},
                ratio_to_first={m: round(v / median[first], 3) for m, v in median.items()},
                threads=os.environ["OMP_NUM_THREADS"])


def run_micro(steps: int) -> List[dict]:
    """Forward+backward time of each operation's fast and reference form, in this process.

    The two poolings and the ``5 x 5`` depthwise convolution (the parts of :data:`OPS4`
    that have a fast form) at the three stage shapes of the paper config (batch 16),
    median of ``steps`` runs after two warm-ups.
    """
    import mxnet as mx
    import numpy as np
    from mxnet import autograd
    from mxnet.gluon import HybridBlock
    from dso_nas.models.ops import DepthwiseConv, pool2d

    class _Pool(HybridBlock):
        def __init__(self, pool_type, channels, impl):
            super().__init__()
            self.args = (pool_type, channels, 3, 1, impl)

        def hybrid_forward(self, F, x):
            return pool2d(F, x, *self.args)

    records = []
    for channels, side in ((48, 32), (96, 16), (192, 8)):
        shape = (16, channels, side, side)
        x = mx.nd.random.uniform(shape=shape)
        x.attach_grad()
        for op in ("max_pool_3x3", "avg_pool_3x3", "dw_conv_5x5"):
            row = dict(micro=op, shape=list(shape))
            for impl in ("reference", "fast"):
                if op.startswith("dw"):
                    block = DepthwiseConv(channels, int(op[-1]), impl=impl)
                else:
                    block = _Pool(op[:3], channels, impl)
                block.initialize()
                block.hybridize(static_alloc=True, static_shape=True)
                times = []
                for k in range(steps + 2):
                    start = time.perf_counter()
                    with autograd.record():
                        y = block(x)
                    y.backward()
                    mx.nd.waitall()
                    if k >= 2:
                        times.append(time.perf_counter() - start)
                row[f"{impl}_ms"] = round(1e3 * float(np.median(times)), 2)
            row["speedup"] = round(row["reference_ms"] / row["fast_ms"], 2)
            records.append(row)
    return records


# ----------------------------------------------------------------------------- parent side


def _spawn(config: str, mode: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", config, mode,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--ops-impl", args.ops_impl,
           "--static-shape" if args.static_shape else "--no-static-shape"]
    LOG.info("bench: %s / %s ...", config, mode)
    env = dict(os.environ)
    if "ops_floor" in mode.split("+"):
        env[FLOOR_CSE_ENV] = "0"
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(config=config, mode=mode, batch=CONFIGS[config]["batch"], img_per_s=None,
                    peak_rss_mb=None, error=f"timed out after {args.timeout} s")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return dict(config=config, mode=mode, batch=CONFIGS[config]["batch"], img_per_s=None,
                    peak_rss_mb=None, error=f"exit {proc.returncode}: {' | '.join(tail)}")
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
        raise SystemExit(f"bench_step: unknown {what} {', '.join(bad)}; valid: {', '.join(valid)}")
    return names


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (1 when a measurement failed)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", help="comma-separated: " + ", ".join(CONFIGS)
                   + " (default: see DEFAULT_RUNS)")
    p.add_argument("--modes", help="comma-separated: " + ", ".join(MODES) + " (default: all)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per (config, mode)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--ops-impl", default="fast", choices=("fast", "reference"),
                   help="operation implementation (dso_nas.models.ops.OP_IMPLS)")
    p.add_argument("--static-shape", action=argparse.BooleanOptionalAction, default=False,
                   help="hybridize with static_shape=True too (faster, much more memory)")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per (config, mode)")
    p.add_argument("--micro", action="store_true",
                   help="time each operation's fast and reference form instead (in-process)")
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    use_all_cores()  # as the CLI does: before MXNet is imported here or in the children
    tuned = tune_allocator()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.child:
        config, mode = args.child
        if "+" in mode:
            record = run_interleaved(config, mode.split("+"), max(args.steps, 3), args.ops_impl)
        else:
            record = run_child(config, mode, args.steps, args.warmup, args.ops_impl,
                               args.static_shape)
        record["allocator_tuned"] = tuned
        sys.stdout.write(json.dumps(record) + "\n")
        return 0
    if args.micro:
        for record in run_micro(max(args.steps, 5)):
            sys.stdout.write(json.dumps(record) + "\n")
        return 0
    if args.configs is None and args.modes is None:
        runs = DEFAULT_RUNS
    else:
        configs = _names(args.configs or "cifar_paper,small", list(CONFIGS), "config")
        modes = _names(args.modes or ",".join(MODES), MODES, "mode")  # a+b: interleaved
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
    sys.exit(main())
