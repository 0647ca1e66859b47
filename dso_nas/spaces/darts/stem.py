"""The DARTS networks' fixed pieces: the stem, the cell inputs' preprocessing and their costs.

The stem is a ``3 x 3`` convolution (no bias) to ``stem_multiplier · C`` channels and a BN
(affine), in the search and the evaluation network alike. A cell's input is preprocessed to C
channels by a ``1 x 1`` ReLU-conv-BN, or by a factorized reduce when it is twice the cell's
resolution (the older input of the cell after a reduction).
"""
from __future__ import annotations

from typing import Tuple

from mxnet.gluon import HybridBlock, nn

from ...ops import Cost, conv_cost
from ...ops.darts import DartsBN, darts_bn_cost, factorized_reduce_cost, relu_conv_bn_cost

__all__ = ["DartsStem", "stem_cost", "stem_output_hw", "preprocess_cost", "cell_output_hw"]


class DartsStem(HybridBlock):
    """``3 x 3`` conv (pad 1, no bias; stride 1 in DARTS, 2 for small micro runs) -> BN (affine)."""

    def __init__(self, in_channels: int, channels: int, *, stride: int = 1, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.channels, self.stride = in_channels, channels, stride
        with self.name_scope():
            self.conv = nn.Conv2D(channels, 3, strides=stride, padding=1, use_bias=False, in_channels=in_channels,
                                  prefix="conv_")
            self.bn = DartsBN(channels, True, bn_eps, bn_momentum, prefix="bn_")

    def hybrid_forward(self, F, x):
        return self.bn(self.conv(x))


def stem_cost(in_channels: int, channels: int, height: int, width: int, stride: int = 1) -> Cost:
    """Analytic cost of :class:`DartsStem`."""
    return conv_cost(in_channels, channels, 3, height, width, stride) + darts_bn_cost(channels)


def stem_output_hw(hw: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """The stem's output size (pad 1, ``3 x 3``): ``ceil(H / stride)``."""
    return (hw[0] + stride - 1) // stride, (hw[1] + stride - 1) // stride


def preprocess_cost(c_in: int, c_out: int, height: int, width: int, reduce: bool, affine: bool) -> Cost:
    """A cell input's preprocessing on ``c_in x height x width``: factorized reduce or ``1 x 1`` ReLU-conv-BN."""
    if reduce:
        return factorized_reduce_cost(c_in, c_out, height, width, affine)
    return relu_conv_bn_cost(c_in, c_out, 1, height, width, 1, affine)


def cell_output_hw(hw: Tuple[int, int], reduction: bool) -> Tuple[int, int]:
    """The size of a cell's output for inputs of ``hw`` (a reduction halves, rounding up)."""
    return ((hw[0] + 1) // 2, (hw[1] + 1) // 2) if reduction else tuple(hw)
