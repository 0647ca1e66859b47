"""The run's networks from its parts: the supernet, the architecture retraining builds, its
width and the derived network, in the parts' op form."""
from __future__ import annotations

from typing import Any, Tuple

from ..config import CfgNode
from ..errors import ArchitectureError
from ..models.width import find_width_multiplier
from ..spaces.archfile import architecture_space
from ..search.methods import get_method
from .parts import Parts

__all__ = ["build_supernet", "check_arch_space", "retrain_arch", "build_derived", "inference_config", "width_for"]


def build_supernet(cfg: CfgNode, parts: Parts) -> Any:
    """The supernet of the config's space with the task's head (BN γ fixed unless
    ``train.fix_gamma`` is off), in ``parts.backend``, weighing its ops as the search method does."""
    head = parts.task.head(cfg, parts.backend)
    return parts.space.build_supernet(cfg, backend=parts.backend, head=head,
                                      weighting=get_method(cfg.search.method).weighting)


def check_arch_space(arch: Any, parts: Parts) -> None:
    """``ArchitectureError`` unless ``arch`` belongs to the config's space (``model.space``)."""
    own = architecture_space(arch).name
    if own != parts.space.name:
        raise ArchitectureError(f"the architecture is a {own} architecture but model.space={parts.space.name}: "
                                f"an architecture file names its own space, drop the model.space override")


def retrain_arch(arch: Any, cfg: CfgNode, parts: Parts) -> Any:
    """The architecture retraining builds: ``arch`` itself (``retrain.layout=arch``) or its
    cells laid on ``cfg.model``'s layout (``config``: transfer, TPAMI Table 2 †), checked."""
    check_arch_space(arch, parts)
    if cfg.retrain.layout == "config":
        arch = parts.space.on_layout(arch, cfg)
    parts.space.check_arch(arch, cfg)
    return arch


def build_derived(arch: Any, cfg: CfgNode, width_mult: float, parts: Parts) -> Any:
    """The retraining network of an architecture under the config's retraining options."""
    head = parts.task.head(cfg, parts.backend, dropout=cfg.retrain.dropout)
    return parts.space.build_net(arch, cfg, width_mult=width_mult, backend=parts.backend, head=head,
                                 aux_head=parts.task.aux_head(cfg, parts.backend))


def inference_config(cfg: CfgNode) -> CfgNode:
    """``cfg`` with the retraining-only extras off (aux head, dropout, drop path): the
    network as deployed, which the latency budget times."""
    d = cfg.to_dict()
    d["retrain"].update(aux_weight=0.0, dropout=0.0, drop_path=0.0)
    return CfgNode.from_dict(d)


def width_for(arch: Any, cfg: CfgNode, input_hw: Tuple[int, int], parts: Parts) -> float:
    """The global width multiplier: meets ``retrain.target_params`` / ``target_flops`` if set,
    counting the space's derived net with the task's head."""
    r = cfg.retrain
    if r.target_params > 0 or r.target_flops > 0:
        head_cost = parts.task.head_cost(cfg)
        return find_width_multiplier(lambda m: parts.space.net_cost(arch, cfg, m, input_hw, head_cost)["total"],
                                     target_params=r.target_params, target_flops=r.target_flops)
    return r.width_mult
