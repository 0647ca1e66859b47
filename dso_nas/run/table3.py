"""TPAMI Table 3 beside a mobile-space run: the paper's rows, then ours and the published
reference nets (experiments/mobile/reference) with params, FLOPs and CPU latency measured on
this machine in the same call, at batch 1 and 224x224."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

import mxnet as mx

from ..config import CfgNode, load_config
from ..latency import wall_clock_latency
from ..spaces import get_space
from ..spaces.archfile import load_architecture

__all__ = ["PAPER_TABLE3", "REFERENCE_DIR", "REFERENCES", "table3"]

# TPAMI Table 3: top-1 / top-5 error %, latency ms GPU (batch 8) / CPU (batch 1, i5-6600K), search GPU hours.
PAPER_TABLE3 = {
    "MobileNet": (29.4, 10.5, 5.4, 11.7, None),
    "MobileNet v2": (28.0, 9.0, 6.2, 20.5, None),
    "Proxyless(GPU)*": (25.4, 8.4, 6.2, 15.3, 200),
    "Proxyless(CPU)*": (25.1, 8.1, 7.3, 21.7, 200),
    "DSO-NAS(GPU)": (25.2, 8.2, 6.3, 15.5, 168),
    "DSO-NAS(CPU)": (24.8, 8.0, 7.1, 21.9, 168),
}
REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "mobile", "reference")
#: The reference nets measured beside ours (file stem -> row name).
REFERENCES = {"mobilenet_v2": "MobileNet v2 (ref. file)", "proxyless_gpu": "Proxyless(GPU) (ref. file)",
              "proxyless_cpu": "Proxyless(CPU) (ref. file)", "proxyless_mobile": "Proxyless(mobile) (ref. file)"}
SIDE = 224


def _measured(arch: Any, cfg: CfgNode, runs: int, warmup: int) -> Dict[str, Any]:
    space = get_space("mobile")
    net = space.build_net(arch, cfg, width_mult=1.0, backend="reference", head=None)
    cost = space.net_cost(arch, cfg, 1.0, (SIDE, SIDE), None)["total"]
    ms = wall_clock_latency(net, (1, arch.in_channels, SIDE, SIDE), runs=runs, warmup=warmup, ctx=mx.cpu())
    return {"params": cost.params, "flops": cost.flops, "cpu_latency_ms": round(ms, 3)}


def table3(cfg: CfgNode, arch_path: str, result: Dict[str, Any]) -> Tuple[List[str], Dict[str, Any]]:
    """The lines of Table 3 and their figures: the paper's rows, ours (``arch_path``, with
    ``result``'s errors when retrained) and the reference nets, all timed now."""
    runs, warmup = cfg.latency.runs, cfg.latency.warmup
    rows: Dict[str, Dict[str, Any]] = {}
    ours = load_architecture(arch_path)
    rcfg = load_config(None, [*get_space("mobile").info_overrides(ours), f"model.num_classes={cfg.model.num_classes}",
                              f"model.in_channels={cfg.model.in_channels}"])
    rows["ours (" + os.path.basename(os.path.dirname(os.path.abspath(arch_path))) + ")"] = {
        **_measured(ours, rcfg, runs, warmup),
        **({"top1_error": result["test_error"], "top5_error": result.get("test_top5_error")} if result else {})}
    for stem, name in REFERENCES.items():
        arch = load_architecture(os.path.join(REFERENCE_DIR, f"{stem}.yaml"))
        rows[name] = _measured(arch, load_config(None, get_space("mobile").info_overrides(arch)), runs, warmup)
    lines = ["TPAMI Table 3 (ImageNet; GPU latency at batch 8 on a GTX 1080Ti, CPU at batch 1 on an i5-6600K):",
             f"{'':30s}{'top-1 / top-5 err %':>21s}{'GPU / CPU ms':>16s}{'GPU h':>7s}"]
    for name, (t1, t5, gpu, cpu, hours) in PAPER_TABLE3.items():
        lines.append(f"{'paper ' + name:30s}{f'{t1:.1f} / {t5:.1f}':>21s}{f'{gpu:.1f} / {cpu:.1f}':>16s}"
                     f"{'-' if hours is None else hours:>7}")
    lines += [f"measured here now (batch 1, {SIDE}x{SIDE}, CPU, width 1; ours with its run's "
              f"{cfg.model.num_classes} classes, the reference files with 1000):",
              f"{'':30s}{'top-1 / top-5 err %':>21s}{'params':>9s}{'FLOPs':>9s}{'CPU ms':>9s}"]
    for name, row in rows.items():
        errors = (f"{100 * row['top1_error']:.1f} / {100 * (row['top5_error'] or float('nan')):.1f}"
                  if "top1_error" in row else "-")
        lines.append(f"{name:30s}{errors:>21s}{row['params'] / 1e6:>8.2f}M{row['flops'] / 1e6:>8.0f}M"
                     f"{row['cpu_latency_ms']:>9.2f}")
    return lines, {"paper_table3": PAPER_TABLE3, "table3": rows}
