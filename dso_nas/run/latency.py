"""``dso-nas latency``: build a config's latency lookup table, and check the sum-of-pieces
predictor against the measured end-to-end latency of derived networks (TPAMI Eq. 19, Table 3)."""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence

from ..config import load_config
from ..errors import UserError
from ..latency import LatencyTable, device_key, wall_clock_latency
from ..paths import check_output
from ..spaces.archfile import load_architecture
from .nets import build_derived, build_supernet, check_arch_space, inference_config
from .parts import parts_of

__all__ = ["latency", "predicted_and_measured"]

LOG = logging.getLogger("dso_nas")


def _model(cfg, parts, arch: Any = None):
    """The space's latency model of ``cfg``'s supernet, or of ``arch``'s own macro and ops."""
    deployed = inference_config(cfg)
    side = cfg.latency.input_size
    shape = (1, cfg.model.in_channels, side, side)
    table = LatencyTable(cfg.latency.table, parts.ctxs[0], parts.backend, cfg.latency.runs, cfg.latency.warmup)
    if arch is not None and hasattr(parts.space, "arch_latency_model"):
        return parts.space.arch_latency_model(arch, table, build_net=lambda a: build_derived(a, deployed, 1.0, parts),
                                              input_shape=shape, backend=parts.backend), shape
    net = build_supernet(cfg, parts)
    return parts.space.latency_model(net, table, build_net=lambda a: build_derived(a, deployed, 1.0, parts),
                                     input_shape=shape, backend=parts.backend), shape


def predicted_and_measured(cfg, parts, arch: Any, show_progress: bool = True) -> Dict[str, Any]:
    """The table's prediction for ``arch`` (its missing entries measured first) and the
    measured batch-1 latency of its deployed network at width 1, in ms, and the error."""
    model, shape = _model(cfg, parts, arch)
    model.build(show_progress)
    predicted = float(model(arch))
    net = build_derived(arch, inference_config(cfg), 1.0, parts)
    measured = wall_clock_latency(net, shape, runs=cfg.latency.runs, warmup=cfg.latency.warmup, ctx=parts.ctxs[0])
    return {"predicted_ms": round(predicted, 4), "measured_ms": round(measured, 4),
            "error_pct": round(100.0 * (predicted - measured) / measured, 2)}


def latency(config_path: Optional[str], overrides: Sequence[str] = (), arch_paths: Sequence[str] = ()) -> Dict[str, Any]:
    """Build the lookup table of ``config_path``'s supernet (progress bar) and, for every
    architecture given, compare the prediction with the measured latency."""
    cfg = load_config(config_path, overrides)
    parts = parts_of(cfg)
    archs = [(path, load_architecture(path)) for path in arch_paths]  # every input checked before measuring
    for path, arch in archs:
        try:
            check_arch_space(arch, parts)
            parts.space.check_arch(arch, inference_config(cfg))
        except UserError as e:
            raise type(e)(f"architecture file {path}: {e}") from None
    check_output(cfg.latency.table, "latency.table")
    start = time.time()
    model, shape = _model(cfg, parts)
    n = len(model.entries())
    model.build(cfg.progress)
    out: Dict[str, Any] = {"table": model.table.path, "device": device_key(parts.ctxs[0], parts.backend),
                           "entries": n, "input": list(shape), "seconds": round(time.time() - start, 2)}
    checks: List[Dict[str, Any]] = []
    for path, arch in archs:
        checks.append({"arch": path, **predicted_and_measured(cfg, parts, arch, cfg.progress)})
    if checks:
        out["architectures"] = checks
    return out
