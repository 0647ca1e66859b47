"""Hand-designed reference networks: registered like a search space, but with nothing to search.

``cifar_resnet`` is GluonCV's CIFAR ResNet v1 (``gluoncv.model_zoo.cifarresnet``, the family of
``cifar_resnet20_v1``): a 3×3 conv + BN stem, then stages of ``CIFARBasicBlockV1`` at strides
1, 2, 2. The network is built from GluonCV's own classes; only its pooling + dense output is
replaced by the task's head, and its widths are scaled by the global width multiplier with the
same rounding as the derived nets (``retrain.width_divisor``), so ``retrain.target_params``
matches it to a searched model's budget. ``dso-nas retrain --arch FILE`` trains it like any
derived architecture; the study (``dso-nas study``) uses it as the outside anchor.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ...errors import ConfigError
from ..base import HeadCost, HeadFactory, SearchSpace, check_plain_arch
from .resnet import SPACE, CifarResNet, ResNetArchitecture, resnet_cost

__all__ = ["CifarResNetSpace", "ResNetArchitecture", "CifarResNet"]


class CifarResNetSpace(SearchSpace):
    """GluonCV's CIFAR ResNet v1 behind the :class:`~dso_nas.spaces.base.SearchSpace` API."""

    name = SPACE
    aliases: Tuple[str, ...] = ()
    searchable = False

    def _no_search(self, *_args, **_kwargs):
        raise ConfigError(f"model.space={SPACE} is a hand-designed reference with nothing to search; "
                          f"retrain its architecture file with: dso-nas retrain --arch FILE model.space={SPACE}")

    build_supernet = derive = search_report = budget_blocks = lambda_deriver = latency_model = _no_search
    supernet_info = baseline = _no_search

    def arch_from_dict(self, data: Dict[str, Any]) -> ResNetArchitecture:
        return ResNetArchitecture.from_dict(data)

    def check_arch(self, arch: Any, cfg: Any) -> None:
        check_plain_arch(SPACE, ResNetArchitecture, arch, cfg)
        self.check_output_stride(cfg, self.final_stride(cfg))

    def final_stride(self, cfg: Any) -> int:
        """GluonCV's CIFAR ResNet: stages at strides 1, 2, 2."""
        return 4

    def build_net(self, arch: ResNetArchitecture, cfg: Any, *, width_mult: float, backend: str,
                  head: Optional[HeadFactory], aux_head: Optional[HeadFactory] = None) -> CifarResNet:
        m = cfg.model
        return CifarResNet(arch, width_mult=width_mult, width_divisor=cfg.retrain.width_divisor,
                           num_classes=m.num_classes, bn_eps=m.bn_eps, bn_momentum=m.bn_momentum,
                           backend=backend, head=head)

    def net_cost(self, arch: ResNetArchitecture, cfg: Any, width_mult: float, input_hw,
                 head_cost: Optional[HeadCost]) -> Dict[str, Any]:
        return resnet_cost(arch, width_mult, tuple(input_hw), cfg.model.num_classes,
                           width_divisor=cfg.retrain.width_divisor, head_cost=head_cost)

    def arch_info(self, arch: ResNetArchitecture) -> Dict[str, Any]:
        return {"layers": list(arch.layers), "channels": list(arch.channels)}

    def kept_rate(self, arch: Any) -> float:
        return 1.0
