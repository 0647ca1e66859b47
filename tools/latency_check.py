"""Validate the latency lookup table (Eq. 19): predicted vs measured end-to-end latency of derived
nets, and whether two table builds order the connections alike.

    python tools/latency_check.py [--config experiments/fashion_mnist/search.yaml] [--nets 6] [KEY=VALUE ...]

Builds the config's supernet and two lookup tables in fresh folders (two independent
measurements of every piece), then for ``--nets`` random derived architectures (keep rates
spread over 0.15-1.0, full scope) times the whole deployed net at batch 1 (mean of
``--runs`` after warm-up) and compares it with table A's prediction. Finally it computes the
Eq. 19 latency deductions of every connection for one of those λ masks from each table and
reports the Spearman rank correlation of the two. One JSON line per net, then a summary line.
"""
from __future__ import annotations

import argparse
import json
import tempfile

from toolentry import program, run_tool


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="latency_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/fashion_mnist/search.yaml")
    p.add_argument("--nets", type=int, default=6)
    p.add_argument("--runs", type=int, default=20, help="timed forwards per end-to-end measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return run_tool("latency_check", p, check, argv)


def check(args: argparse.Namespace) -> int:
    """One JSON line per net, then the summary line."""
    import numpy as np
    from scipy.stats import spearmanr

    from dso_nas.config import load_config
    from dso_nas.run.nets import build_derived, build_supernet, inference_config
    from dso_nas.run.parts import parts_of
    from dso_nas.latency import LatencyTable, wall_clock_latency
    from dso_nas.search.latency import LatencyBudget

    cfg = load_config(args.config, list(args.overrides) + ["progress=false"])
    parts = parts_of(cfg)
    net = build_supernet(cfg, parts)
    side = cfg.latency.input_size
    shape = (1, cfg.model.in_channels, side, side)
    deployed = inference_config(cfg)
    latency_net = lambda arch: build_derived(arch, deployed, 1.0, parts)  # noqa: E731
    models, build_s = [], []
    for _ in range(2):
        table = LatencyTable(tempfile.mkdtemp(prefix="lat-"), parts.ctxs[0], parts.backend, cfg.latency.runs,
                             cfg.latency.warmup)
        model = parts.space.latency_model(net, table, build_net=latency_net, input_shape=shape, backend=parts.backend)
        build_s.append(model.build(show_progress=False))
        models.append(model)
    rng = np.random.RandomState(args.seed)
    errors, archs = [], []
    for i, rate in enumerate(np.linspace(0.15, 1.0, args.nets)):
        arch = parts.space.baseline("random-full" if rate < 1 else "full", cfg, keep_rate=float(rate),
                                    seed=int(rng.randint(1 << 30)))
        archs.append(arch)
        measured = wall_clock_latency(latency_net(arch), shape, runs=args.runs, warmup=3, ctx=parts.ctxs[0])
        predicted = models[0].predict(arch)
        errors.append((predicted - measured) / measured)
        print(json.dumps({"net": i, "keep_rate": round(float(rate), 3), "kept_ops": [len(c.ops) for c in arch.cells],
                          "measured_ms": round(measured, 3), "predicted_ms": round(predicted, 3),
                          "error": round(errors[-1], 4)}))
    # Eq. 19 deductions of every connection for one mask, from each table
    masks = [np.ones(p.shape, dtype=bool) & (rng.uniform(size=p.shape) < 0.6) for p in net.lambda_params()]
    lambdas = [m.astype(float) for m in masks]
    lats = []
    for model in models:
        budget = LatencyBudget(None, net.lambda_params(), deriver=parts.space.lambda_deriver(net), measure=model,
                               gamma=cfg.search.gamma)
        lats.append(np.concatenate([v.reshape(-1) for v in budget.connection_latencies(lambdas)[0]]))
    rho = float(spearmanr(lats[0], lats[1]).correlation)
    err = np.abs(np.array(errors))
    print(json.dumps({"summary": True, "config": args.config, "backend": parts.backend, "input": list(shape),
                      "table_entries": len(models[0].table.entries), "table_build_s": [round(s, 1) for s in build_s],
                      "mean_abs_error": round(float(err.mean()), 4), "max_abs_error": round(float(err.max()), 4),
                      "mean_error": round(float(np.mean(errors)), 4),
                      "deductions_negative": int(sum((v < 0).sum() for v in lats)),
                      "spearman_two_tables": round(rho, 4)}))
    return 0


if __name__ == "__main__":
    program(main)
