"""GluonCV's CIFAR ResNet v1 as an architecture file and a width-scaled network."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from gluoncv.model_zoo.cifarresnet import CIFARBasicBlockV1, CIFARResNetV1
from mxnet.gluon import HybridBlock

from ...errors import ArchitectureError
from ...models.heads import Classifier, HeadCost, HeadFactory, classifier_cost
from ...ops import REFERENCE, Cost, bn_cost, check_backend, conv_cost, conv_out_size, sum_cost
from ..archfile import check_file_keys
from ..dense.derived import scaled_width

__all__ = ["SPACE", "VERSION", "ResNetArchitecture", "CifarResNet", "resnet_cost"]

SPACE = "cifar_resnet"
VERSION = 1
_KEYS = {"version", "space", "in_channels", "layers", "channels", "meta"}


@dataclass(frozen=True)
class ResNetArchitecture:
    """A CIFAR ResNet v1: ``layers[i]`` basic blocks in stage ``i``; ``channels`` the stem's
    width then one per stage (``cifar_resnet20_v1``: ``[3, 3, 3]``, ``[16, 16, 32, 64]``)."""

    layers: Tuple[int, ...]
    channels: Tuple[int, ...]
    in_channels: int = 3
    meta: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """The file form (:func:`~dso_nas.spaces.archfile.save_architecture` writes it)."""
        return {"version": VERSION, "space": SPACE, "in_channels": self.in_channels,
                "layers": list(self.layers), "channels": list(self.channels), "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ResNetArchitecture":
        """Validate the file form (``ArchitectureError`` naming the bad key)."""
        check_file_keys(data, SPACE, VERSION, _KEYS)
        layers, channels = data.get("layers"), data.get("channels")
        if not _positive_ints(layers) or not layers:
            raise ArchitectureError(f"'layers' must be a non-empty list of positive integers, got {layers!r}")
        if not _positive_ints(channels) or len(channels) != len(layers) + 1:
            raise ArchitectureError(f"'channels' must list {len(layers) + 1} positive integers (the stem, then "
                                    f"one per stage), got {channels!r}")
        in_channels = data.get("in_channels", 3)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ArchitectureError(f"'in_channels' must be a positive integer, got {in_channels!r}")
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise ArchitectureError("'meta' must be a mapping")
        return cls(tuple(layers), tuple(channels), in_channels, dict(meta))


def _positive_ints(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def resnet_widths(arch: ResNetArchitecture, width_mult: float, divisor: int = 1) -> List[int]:
    """The stem's and each stage's width at ``width_mult`` (rounded as the derived nets are).

    GluonCV's stages downsample their shortcut only when the width changes, so a strided
    stage (every one after the first) is kept at least ``divisor`` wider than the one before
    when rounding would make them equal.
    """
    widths = [scaled_width(c, width_mult, divisor) for c in arch.channels]
    for i in range(2, len(widths)):
        widths[i] = max(widths[i], widths[i - 1] + divisor)
    return widths


class CifarResNet(HybridBlock):
    """GluonCV's ``CIFARResNetV1`` feature extractor with the task's head.

    Parameters
    ----------
    arch : ResNetArchitecture
        Stages and base widths.
    width_mult : float
        Global width multiplier; ``width_divisor`` rounds each width to a multiple.
    num_classes : int
        Outputs of the default classifier (when ``head`` is not given).
    head : callable, optional
        ``(in_channels, prefix) -> HybridBlock``: the task's head on the last feature map.
    """

    def __init__(self, arch: ResNetArchitecture, *, width_mult: float = 1.0, width_divisor: int = 1,
                 num_classes: int = 10, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, head: Optional[HeadFactory] = None, **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        self.widths = widths = resnet_widths(arch, width_mult, width_divisor)
        with self.name_scope():
            resnet = CIFARResNetV1(CIFARBasicBlockV1, list(arch.layers), widths, classes=num_classes,
                                   norm_kwargs={"epsilon": bn_eps, "momentum": bn_momentum}, prefix="resnet_")
            # GluonCV's stem and stages; its global pooling + dense give way to the task's head
            self.features = resnet.features[:-1]
            self.classifier = (head(widths[-1], "classifier_") if head is not None
                               else Classifier(widths[-1], num_classes, backend=self.backend, prefix="classifier_"))

    def set_drop_path(self, drop_path: float) -> None:
        """No drop path in a ResNet (the retraining loop calls this on every network)."""

    def hybrid_forward(self, F, x):
        return self.classifier(self.features(x))


def _basic_block_cost(c_in: int, c_out: int, stride: int, h: int, w: int) -> Tuple[Cost, int, int]:
    h2, w2 = conv_out_size(h, 3, stride), conv_out_size(w, 3, stride)
    cost = (conv_cost(c_in, c_out, 3, h, w, stride) + bn_cost(c_out)
            + conv_cost(c_out, c_out, 3, h2, w2) + bn_cost(c_out) + sum_cost(2, c_out, h2, w2))
    if c_in != c_out:  # GluonCV's downsample: 1×1 conv at the stride + BN
        cost = cost + conv_cost(c_in, c_out, 1, h, w, stride) + bn_cost(c_out)
    return cost, h2, w2


def resnet_cost(arch: ResNetArchitecture, width_mult: float, input_hw: Tuple[int, int], num_classes: int,
                width_divisor: int = 1, head_cost: Optional[HeadCost] = None) -> Dict[str, Any]:
    """Analytic cost of :class:`CifarResNet`: ``total``, ``stem``, ``blocks`` (per stage), ``widths``."""
    widths = resnet_widths(arch, width_mult, width_divisor)
    h, w = input_hw
    stem = conv_cost(arch.in_channels, widths[0], 3, h, w) + bn_cost(widths[0])
    stages, c_in = [], widths[0]
    for i, (n, c_out) in enumerate(zip(arch.layers, widths[1:])):
        stage = Cost.zero()
        for j in range(n):
            block, h, w = _basic_block_cost(c_in, c_out, 2 if (i > 0 and j == 0) else 1, h, w)
            stage, c_in = stage + block, c_out
        stages.append(stage)
    head = (head_cost or (lambda c, hh, ww: classifier_cost(c, num_classes, hh, ww)))(widths[-1], h, w)
    return {"total": stem + sum(stages, Cost.zero()) + head, "stem": stem, "blocks": stages,
            "classifier": head, "widths": widths}
