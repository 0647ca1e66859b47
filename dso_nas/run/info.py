"""``dso-nas info``: parameters, FLOPs, MAC and λ counts without training."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from ..config import load_config
from ..data import dataset_spec
from ..spaces.archfile import load_architecture
from .build import build_supernet, parts_of, retrain_arch, width_for

__all__ = ["info"]


def info(config_path: Optional[str], overrides: Sequence[str] = (), arch_path: Optional[str] = None) -> Dict[str, Any]:
    """Parameters, FLOPs, MAC and λ counts of the supernet or of a derived architecture."""
    cfg = load_config(config_path, overrides)
    parts = parts_of(cfg)
    side = dataset_spec(cfg.data.name).input_side(cfg)
    hw = (side, side)
    out: Dict[str, Any] = {"dataset": cfg.data.name, "input": [cfg.model.in_channels, side, side]}
    if arch_path:
        arch = retrain_arch(load_architecture(arch_path), cfg, parts)
        width = width_for(arch, cfg, hw, parts)
        cost = parts.space.net_cost(arch, cfg, width, hw, parts.task.head_cost(cfg))
        out.update({"arch": arch_path, "width_mult": width, **cost["total"].as_dict(),
                    "blocks": len(cost["blocks"]), "block_flops": [c.flops for c in cost["blocks"]],
                    **parts.space.arch_info(arch)})
        return out
    net = build_supernet(cfg, parts)
    cost = net.cost(hw)
    out.update({"model": "supernet", "space": parts.space.name, "scope": cfg.model.scope, **cost["total"].as_dict(),
                **parts.space.supernet_info(net, cfg)})
    return out
