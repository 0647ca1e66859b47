"""The mobile space's fixed parts and its derived network, with their analytic cost.

:class:`MobileStem` (``3 x 3`` stride-2 conv -> BN -> ReLU6, then the fixed ``mbconv_3x3_e1``
block) and :class:`MobileTail` (``1 x 1`` conv -> BN -> ReLU6) are shared by the supernet and
the derived network; :class:`MobileNet` rebuilds a derived network from its architecture
file, each block one op of the op table plus its residual where the shapes allow it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from mxnet.gluon import HybridBlock, nn

from ...models.heads import Classifier, HeadCost, HeadFactory, classifier_cost
from ...ops import REFERENCE, OPS, Cost, bn_cost, check_backend, conv_cost, conv_out_size, sum_cost
from ...ops.mbconv import BNAct
from .arch import FIXED_OP, SKIP, BlockPlan, Macro, MobileArchitecture

__all__ = ["MobileStem", "MobileTail", "MobileBlock", "MobileNet", "stem_cost", "tail_cost", "block_cost",
           "mobile_cost"]


class MobileStem(HybridBlock):
    """First conv (``3 x 3``, stride 2) -> BN -> ReLU6 -> the fixed ``mbconv_3x3_e1`` block."""

    def __init__(self, macro: Macro, affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        with self.name_scope():
            self.conv = nn.Conv2D(macro.first_conv, 3, strides=2, padding=1, use_bias=False,
                                  in_channels=macro.in_channels, prefix="conv_")
            self.bn = BNAct(macro.first_conv, "relu6", affine, bn_eps, bn_momentum, prefix="bn_")
            self.block = OPS.get(FIXED_OP).build(macro.first_conv, 1, affine, bn_eps, bn_momentum,
                                                 c_out=macro.first_block, backend=self.backend, prefix="block_")

    def hybrid_forward(self, F, x):
        return self.block(self.bn(self.conv(x)))


def stem_cost(macro: Macro, height: int, width: int, affine: bool = True) -> Tuple[Cost, int, int]:
    """Cost of :class:`MobileStem` and its output height and width."""
    h, w = conv_out_size(height, 3, 2), conv_out_size(width, 3, 2)
    cost = (conv_cost(macro.in_channels, macro.first_conv, 3, height, width, 2) + bn_cost(macro.first_conv, affine=affine)
            + OPS.get(FIXED_OP).cost(macro.first_conv, h, w, 1, affine, c_out=macro.first_block))
    return cost, h, w


class MobileTail(HybridBlock):
    """Last conv (``1 x 1``) -> BN -> ReLU6, before the head."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(c_out, 1, use_bias=False, in_channels=c_in, prefix="conv_")
            self.bn = BNAct(c_out, "relu6", affine, bn_eps, bn_momentum, prefix="bn_")

    def hybrid_forward(self, F, x):
        return self.bn(self.conv(x))


def tail_cost(c_in: int, c_out: int, height: int, width: int, affine: bool = True) -> Cost:
    """Cost of :class:`MobileTail`."""
    return conv_cost(c_in, c_out, 1, height, width) + bn_cost(c_out, affine=affine)


class MobileBlock(HybridBlock):
    """One derived block: its op, plus the block input where the block has its residual."""

    def __init__(self, plan: BlockPlan, op: str, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.plan, self.op_name = plan, op
        with self.name_scope():
            self.op = OPS.get(op).build(plan.c_in, plan.stride, True, bn_eps, bn_momentum, c_out=plan.c_out,
                                        backend=backend, prefix="op_")

    def hybrid_forward(self, F, x):
        y = self.op(x)
        return y + x if self.plan.residual else y


def block_cost(plan: BlockPlan, op: str, height: int, width: int, affine: bool = True) -> Cost:
    """Cost of a block running ``op`` (nothing for ``"skip"``) on a ``c_in x height x width`` input."""
    if op == SKIP:
        return Cost.zero()
    cost = OPS.get(op).cost(plan.c_in, height, width, plan.stride, affine, c_out=plan.c_out)
    if plan.residual:
        cost = cost + sum_cost(2, plan.c_out, height, width)
    return cost


class MobileNet(HybridBlock):
    """The derived network of a :class:`MobileArchitecture` at a width multiplier.

    Parameters
    ----------
    arch : MobileArchitecture
        The blocks' ops and the macro.
    width_mult : float
        Global width multiplier; ``width_divisor`` rounds each width (:meth:`Macro.scaled`).
    num_classes : int
        Outputs of the default classifier (biased linear layer after global average pooling).
    dropout : float
        Dropout before the classifier.
    head : callable, optional
        ``(in_channels, prefix) -> HybridBlock``: the task's head on the last feature map.
    """

    def __init__(self, arch: MobileArchitecture, *, width_mult: float = 1.0, width_divisor: int = 8,
                 num_classes: int = 1000, dropout: float = 0.0, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, head: Optional[HeadFactory] = None, **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        self.arch = arch
        self.macro = macro = arch.macro.scaled(width_mult, width_divisor)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(MobileStem(macro, True, backend=self.backend, prefix="stem_", **bn))
            for plan, op in zip(macro.plan(), arch.ops()):
                if op != SKIP:
                    self.features.add(MobileBlock(plan, op, backend=self.backend,
                                                  prefix=f"stage{plan.stage}_block{plan.index}_", **bn))
            last_in = macro.widths[-1]
            self.features.add(MobileTail(last_in, macro.last_conv, True, prefix="tail_", **bn))
            self.classifier = (head(macro.last_conv, "classifier_") if head is not None else
                               Classifier(macro.last_conv, num_classes, dropout, self.backend, prefix="classifier_"))

    def set_drop_path(self, drop_path: float) -> None:
        """No drop path in the mobile space (the retraining loop calls this on every network)."""

    def hybrid_forward(self, F, x):
        return self.classifier(self.features(x))


def mobile_cost(arch: MobileArchitecture, width_mult: float, input_hw: Tuple[int, int], num_classes: int,
                width_divisor: int = 8, head_cost: Optional[HeadCost] = None) -> Dict[str, Any]:
    """Analytic cost of :class:`MobileNet`: ``total``, ``stem``, ``blocks`` (per searchable block,
    skipped ones cost nothing), ``tail``, ``classifier``, ``widths``."""
    macro = arch.macro.scaled(width_mult, width_divisor)
    stem, h, w = stem_cost(macro, *input_hw)
    blocks: List[Cost] = []
    for plan, op in zip(macro.plan(), arch.ops()):
        blocks.append(block_cost(plan, op, h, w))
        h, w = conv_out_size(h, 3, plan.stride), conv_out_size(w, 3, plan.stride)
    tail = tail_cost(macro.widths[-1], macro.last_conv, h, w)
    head = (head_cost or (lambda c, hh, ww: classifier_cost(c, num_classes, hh, ww)))(macro.last_conv, h, w)
    total = stem + sum(blocks, Cost.zero()) + tail + head
    return {"total": total, "stem": stem, "blocks": blocks, "tail": tail, "classifier": head,
            "widths": [macro.first_conv, macro.first_block, *macro.widths, macro.last_conv]}
