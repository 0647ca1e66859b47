"""Fixed building pieces shared by the supernet and the derived network.

Every piece is a HybridBlock with explicit arguments and two analytic helpers,
``cost(height, width) -> Cost`` and ``out_shape(height, width) -> (C, H, W)``, where
``height``/``width`` are the spatial size of the piece's input. The matching module-level
functions (:func:`conv_bn_relu_cost`, :func:`stem_cost`, :func:`reduction_cost`,
:func:`classifier_cost`) give the same numbers without building anything.

* :class:`ConvBNReLU` - conv (pad ``k // 2``, no bias) -> BN -> ReLU.
* :class:`Stem` - ``"cifar"``: one ``3 x 3`` ConvBNReLU, stride 1 (Fashion-MNIST uses it with
  ``in_channels=1``); ``"imagenet"``: ``3 x 3`` stride-2 ConvBNReLU to ``channels // 2``, then
  ``3 x 3`` stride-2 ConvBNReLU to ``channels`` (the release: 14 then 28).
* :class:`ReductionBlock` - a ``1 x 1`` and a ``3 x 3`` stride-2 ConvBNReLU, outputs summed
  (TPAMI §3.1). It carries no λ: it is fixed, not searched.
* :class:`Classifier` - global average pooling -> dropout -> dense.
"""
from __future__ import annotations

from typing import Optional, Tuple

from mxnet.gluon import HybridBlock, nn

from dso_nas.errors import ConfigError
from dso_nas.models.ops import (BNReLU, Cost, bn_cost, conv_cost, conv_out_size, dense_cost,
                                global_avg_pool, resolve_impl, sum_cost)

__all__ = [
    "STEM_KINDS",
    "ConvBNReLU",
    "Stem",
    "ReductionBlock",
    "Classifier",
    "conv_bn_relu_cost",
    "stem_cost",
    "stem_out_shape",
    "reduction_cost",
    "classifier_cost",
]

Shape = Tuple[int, int, int]

STEM_KINDS = ("cifar", "imagenet")


# ----------------------------------------------------------------------------- ConvBNReLU


class ConvBNReLU(HybridBlock):
    """``kernel x kernel`` conv (pad ``kernel // 2``, no bias) -> BN -> ReLU.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel, stride : int
        Convolution window and stride.
    affine, bn_eps, bn_momentum
        BatchNorm settings (see :class:`dso_nas.models.ops.BNReLU`).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 **kwargs):
        super().__init__(**kwargs)
        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride
        self.affine = affine
        with self.name_scope():
            self.conv = nn.Conv2D(c_out, kernel, strides=stride, padding=kernel // 2,
                                  use_bias=False, in_channels=c_in)
            self.bn = BNReLU(c_out, affine, bn_eps, bn_momentum)

    def hybrid_forward(self, F, x):
        return self.bn(self.conv(x))

    def out_shape(self, height: int, width: int) -> Shape:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        return (self.c_out, conv_out_size(height, self.kernel, self.stride),
                conv_out_size(width, self.kernel, self.stride))

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``height x width``."""
        return conv_bn_relu_cost(self.c_in, self.c_out, self.kernel, height, width,
                                 self.stride, self.affine)


def conv_bn_relu_cost(c_in: int, c_out: int, kernel: int, height: int, width: int,
                      stride: int = 1, affine: bool = True) -> Cost:
    """Analytic cost of :class:`ConvBNReLU`."""
    return conv_cost(c_in, c_out, kernel, height, width, stride) + bn_cost(c_out, affine=affine)


# ----------------------------------------------------------------------------- Stem


def _stem_layers(kind: str, in_channels: int, channels: int):
    """``[(c_in, c_out, kernel, stride), ...]`` of a stem."""
    if kind == "cifar":
        return [(in_channels, channels, 3, 1)]
    if kind == "imagenet":
        mid = max(channels // 2, 1)
        return [(in_channels, mid, 3, 2), (mid, channels, 3, 2)]
    raise ConfigError(f"unknown stem {kind!r}; valid stems: {', '.join(STEM_KINDS)}")


class Stem(HybridBlock):
    """The network stem (see the module docstring).

    Parameters
    ----------
    kind : {"cifar", "imagenet"}
        Stem layout.
    in_channels : int
        Image channels (3, or 1 for Fashion-MNIST).
    channels : int
        Output channels.
    affine, bn_eps, bn_momentum
        BatchNorm settings.
    """

    def __init__(self, kind: str, in_channels: int, channels: int, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.in_channels, self.channels = kind, in_channels, channels
        self.affine = affine
        layers = _stem_layers(kind, in_channels, channels)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            for c_in, c_out, kernel, stride in layers:
                self.body.add(ConvBNReLU(c_in, c_out, kernel, stride, affine, bn_eps, bn_momentum))

    def hybrid_forward(self, F, x):
        return self.body(x)

    def out_shape(self, height: int, width: int) -> Shape:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        return stem_out_shape(self.kind, self.in_channels, self.channels, height, width)

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``height x width``."""
        return stem_cost(self.kind, self.in_channels, self.channels, height, width, self.affine)


def stem_out_shape(kind: str, in_channels: int, channels: int, height: int,
                   width: int) -> Shape:
    """``(C, H, W)`` after the stem."""
    c = in_channels
    for _, c, kernel, stride in _stem_layers(kind, in_channels, channels):
        height = conv_out_size(height, kernel, stride)
        width = conv_out_size(width, kernel, stride)
    return c, height, width


def stem_cost(kind: str, in_channels: int, channels: int, height: int, width: int,
              affine: bool = True) -> Cost:
    """Analytic cost of :class:`Stem`."""
    total = Cost.zero()
    for c_in, c_out, kernel, stride in _stem_layers(kind, in_channels, channels):
        total = total + conv_bn_relu_cost(c_in, c_out, kernel, height, width, stride, affine)
        height = conv_out_size(height, kernel, stride)
        width = conv_out_size(width, kernel, stride)
    return total


# ----------------------------------------------------------------------------- Reduction


class ReductionBlock(HybridBlock):
    """Halve the resolution: ``1 x 1`` and ``3 x 3`` stride-2 ConvBNReLU branches, summed.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels (the paper doubles the width).
    affine, bn_eps, bn_momentum
        BatchNorm settings.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.c_in, self.c_out, self.affine = c_in, c_out, affine
        with self.name_scope():
            self.conv1 = ConvBNReLU(c_in, c_out, 1, 2, affine, bn_eps, bn_momentum,
                                    prefix="conv1x1_")
            self.conv3 = ConvBNReLU(c_in, c_out, 3, 2, affine, bn_eps, bn_momentum,
                                    prefix="conv3x3_")

    def hybrid_forward(self, F, x):
        return self.conv1(x) + self.conv3(x)

    def out_shape(self, height: int, width: int) -> Shape:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        return self.c_out, conv_out_size(height, 3, 2), conv_out_size(width, 3, 2)

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``height x width``."""
        return reduction_cost(self.c_in, self.c_out, height, width, self.affine)


def reduction_cost(c_in: int, c_out: int, height: int, width: int, affine: bool = True) -> Cost:
    """Analytic cost of :class:`ReductionBlock` (two branches plus the sum)."""
    h_out, w_out = conv_out_size(height, 3, 2), conv_out_size(width, 3, 2)
    return (conv_bn_relu_cost(c_in, c_out, 1, height, width, 2, affine)
            + conv_bn_relu_cost(c_in, c_out, 3, height, width, 2, affine)
            + sum_cost(2, c_out, h_out, w_out))


# ----------------------------------------------------------------------------- Classifier


class Classifier(HybridBlock):
    """Global average pooling -> dropout (when ``dropout > 0``) -> dense.

    Parameters
    ----------
    in_channels : int
        Channels of the last feature map.
    num_classes : int
        Output units.
    dropout : float
        Dropout rate before the dense layer.
    impl : {"fast", "reference"}, optional
        How the pooling is computed (:func:`dso_nas.models.ops.global_avg_pool`).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0,
                 impl: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, dropout
        self.impl = resolve_impl(impl)
        with self.name_scope():
            self.drop = nn.Dropout(dropout) if dropout > 0 else None
            self.fc = nn.Dense(num_classes, in_units=in_channels)

    def hybrid_forward(self, F, x):
        x = global_avg_pool(F, x, self.impl)
        if self.drop is not None:
            x = self.drop(x)
        return self.fc(x)

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``in_channels x height x width``."""
        return classifier_cost(self.in_channels, self.num_classes, height, width)


def classifier_cost(in_channels: int, num_classes: int, height: int, width: int) -> Cost:
    """Analytic cost of :class:`Classifier` (global pooling as a whole-map window)."""
    plane = in_channels * height * width
    return Cost(0, plane, plane + in_channels) + dense_cost(in_channels, num_classes)
