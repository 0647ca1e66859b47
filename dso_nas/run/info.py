"""``dso-nas info``: parameters, FLOPs, MAC and λ counts without training."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from ..config import load_config
from ..data import dataset_spec
from ..errors import UserError
from ..spaces.archfile import architecture_space, load_architecture, space_override
from .nets import build_supernet, retrain_arch, width_for
from .parts import parts_of

__all__ = ["info"]


def info(config_path: Optional[str], overrides: Sequence[str] = (), arch_path: Optional[str] = None,
         latency: bool = False) -> Dict[str, Any]:
    """Parameters, FLOPs, MAC and λ counts of the supernet or of a derived architecture;
    ``latency`` adds the exported derived net's batch-1 latency
    (:func:`dso_nas.run.export.exported_latency`)."""
    if latency and not arch_path:
        raise UserError("info --latency needs --arch ARCH_FILE (the latency of a derived network)")
    own = load_architecture(arch_path) if arch_path else None
    if own is not None:  # the file names its space; without --config also its setting (ImageNet: 224, 1000 classes)
        setting = [] if config_path else architecture_space(own).info_overrides(own)
        overrides = [space_override(own), *setting, *overrides]
    cfg = load_config(config_path, overrides)
    parts = parts_of(cfg)
    side = dataset_spec(cfg.data.name).input_side(cfg)
    hw = (side, side)
    out: Dict[str, Any] = {"dataset": cfg.data.name, "input": [cfg.model.in_channels, side, side]}
    if own is not None:
        arch = retrain_arch(own, cfg, parts)
        width = width_for(arch, cfg, hw, parts)
        cost = parts.space.net_cost(arch, cfg, width, hw, parts.task.head_cost(cfg))
        out.update({"arch": arch_path, "width_mult": width, **cost["total"].as_dict(),
                    "blocks": len(cost["blocks"]), "block_flops": [c.flops for c in cost["blocks"]],
                    **parts.space.arch_info(arch)})
        if latency:
            from .export import exported_latency  # noqa: PLC0415 - onnx imports are slow

            out["latency"] = exported_latency(arch_path, config_path, overrides)
        return out
    net = build_supernet(cfg, parts)
    cost = net.cost(hw)
    out.update({"model": "supernet", "space": parts.space.name, **cost["total"].as_dict(),
                **parts.space.supernet_info(net, cfg)})
    return out
