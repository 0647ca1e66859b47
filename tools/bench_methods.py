"""The two steps of each search method on the DARTS search network (``make bench-methods``).

    python tools/bench_methods.py                      # 8 cells, C = 16, batch 64, 32 x 32 (NASP's Table 6 setting)
    python tools/bench_methods.py --steps 1 --batch 16 # a quick look

Every method's network, Trainers and steps are built by the package (:mod:`dso_nas.run` and the
method's own :meth:`~dso_nas.search.methods.base.SearchMethod.steps`) from its experiment file
(``experiments/darts/search.yaml`` for DSO-NAS, ``nasp_search.yaml``, ``darts1_search.yaml``), on
one fixed random CIFAR-sized batch. The methods run in one process, one after the other (at
batch 64 the three networks together did not fit in 24 GiB; ``--interleave`` alternates rounds
when they fit); the first ``--warmup`` rounds of each are not timed. One JSON line per method, then the table with NASP's
Table 6 ratios (CIFAR-10, 7 ops, seconds over its search: weight update DARTS 103 + 162 s,
NASP 25 + 31 s; first-order α update DARTS 270 s, NASP 176 s).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from toolentry import program, run_tool  # noqa: E402 - after the path

CONFIGS = {"dso": "experiments/darts/search.yaml", "nasp": "experiments/darts/nasp_search.yaml",
           "darts": "experiments/darts/darts1_search.yaml"}
#: NASP's Table 6 (7 ops): seconds of the weight update (forward + backward) and the first-order α update.
PAPER_SECONDS = {"darts": {"weights": 103 + 162, "arch": 270}, "nasp": {"weights": 25 + 31, "arch": 176}}


def _build(method: str, batch: int, overrides: Sequence[str]):
    """Network, steps and a batch of ``method``, as ``dso-nas search`` builds them."""
    import mxnet as mx
    import numpy as np

    from dso_nas.config import load_config
    from dso_nas.data import dataset_spec
    from dso_nas.run.init import initialize
    from dso_nas.run.nets import build_supernet
    from dso_nas.run.parts import parts_of
    from dso_nas.run.trainers import lambda_trainer, search_weight_trainer
    from dso_nas.search.methods import get_method

    cfg = load_config(os.path.join(ROOT, CONFIGS[method]), [f"train.batch_size={batch}", "context=cpu", *overrides])
    parts = parts_of(cfg)
    net = build_supernet(cfg, parts)
    initialize(net, parts.ctxs, cfg.seed)
    method_obj = get_method(method)
    method_obj.init_arch(net, cfg)
    net.hybridize(static_alloc=True)
    w_trainer = search_weight_trainer(net.weight_params(), cfg, parts.dist)
    steps = method_obj.steps(net, w_trainer, lambda_trainer(net, cfg, parts.dist), cfg=cfg, task=parts.task,
                               ctxs=parts.ctxs)
    rng = np.random.RandomState(0)
    side = dataset_spec(cfg.data.name).input_side(cfg)
    data = mx.nd.array(rng.uniform(size=(batch, cfg.model.in_channels, side, side)))
    label = mx.nd.array(rng.randint(0, cfg.model.num_classes, size=batch).astype("float32"))
    return steps, data, label


def bench(methods: Sequence[str], batch: int, steps: int, warmup: int, overrides: Sequence[str],
          interleave: bool = False) -> Dict[str, dict]:
    """Seconds of each method's architecture and weight step: the methods one after the other
    (one network in memory at a time), or with ``interleave`` a round of each in turn (every
    network built at once: about three times the memory)."""
    import gc

    import mxnet as mx

    times: Dict[str, Dict[str, List[float]]] = {m: {"arch": [], "weights": []} for m in methods}

    def rounds(m, built, k):
        st, data, label = built
        for kind, step in (("arch", st.arch), ("weights", st.weights)):
            start = time.perf_counter()
            step(data, label)
            mx.nd.waitall()
            if k >= warmup:
                times[m][kind].append(time.perf_counter() - start)

    if interleave:
        built = {m: _build(m, batch, overrides) for m in methods}
        for k in range(warmup + steps):
            for m in methods:
                rounds(m, built[m], k)
    else:
        for m in methods:
            one = _build(m, batch, overrides)
            for k in range(warmup + steps):
                rounds(m, one, k)
            del one
            gc.collect()
    return {m: {kind: {"median_s": statistics.median(v), "runs_s": [round(x, 3) for x in v]}
                for kind, v in t.items()} for m, t in times.items()}


def table(result: Dict[str, dict]) -> str:
    """The markdown table: per method the median step times, and DARTS / NASP beside the paper's."""
    rows = ["| method | architecture step s | weight step s | round s |", "|---|---:|---:|---:|"]
    for m, r in result.items():
        a, w = r["arch"]["median_s"], r["weights"]["median_s"]
        rows.append(f"| {m} | {a:.2f} | {w:.2f} | {a + w:.2f} |")
    if "darts" in result and "nasp" in result:
        for kind in ("arch", "weights"):
            ours = result["darts"][kind]["median_s"] / result["nasp"][kind]["median_s"]
            paper = PAPER_SECONDS["darts"][kind] / PAPER_SECONDS["nasp"][kind]
            rows.append(f"| DARTS / NASP, {kind} step | ours {ours:.2f}x | NASP Table 6 {paper:.2f}x | |")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    """The tool's arguments."""
    p = argparse.ArgumentParser(prog="bench_methods", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="dso,nasp,darts", help="comma-separated search methods")
    p.add_argument("--batch", type=int, default=64, help="images a step (NASP, DARTS: 64)")
    p.add_argument("--steps", type=int, default=2, help="timed rounds per method")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--interleave", action="store_true", help="a round of each method in turn (3x the memory)")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides for every method")
    return p


def work(args: argparse.Namespace) -> int:
    """Time the methods; one JSON line each (with the OpenMP threads), then the table."""
    from dso_nas.errors import UserError

    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in CONFIGS]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r} (known: {', '.join(CONFIGS)})")
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        raise UserError("--batch and --steps must be at least 1, --warmup at least 0")
    result = bench(methods, args.batch, args.steps, args.warmup, args.overrides, args.interleave)
    threads = os.environ.get("OMP_NUM_THREADS", "")
    for m, r in result.items():
        print(json.dumps({"method": m, "batch": args.batch, "omp_threads": threads, **r}))
    print(table(result))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point (the process settings of ``dso-nas``: one OpenMP thread per core unless
    ``OMP_NUM_THREADS`` is set); returns the exit status."""
    return run_tool("bench_methods", parser(), work, argv)


if __name__ == "__main__":
    program(main)
