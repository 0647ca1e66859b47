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
  (TPAMI §3.1). It carries no λ: it is fixed, not searched. ``stride=1`` keeps the resolution
  instead (DeepLabv3's output stride 16: :func:`reduction_plan` turns the last reduction's
  stride into a dilation of the stage after it).

Every piece takes its op form as ``backend`` (:mod:`dso_nas.ops.backends`) and passes it to
its BN-ReLUs. Heads (classifier, auxiliary classifier) live in :mod:`dso_nas.models.heads`.
"""
from __future__ import annotations

from typing import Tuple

from mxnet.gluon import HybridBlock, nn

from dso_nas.errors import ConfigError
from dso_nas.ops import REFERENCE, BNReLU, Cost, bn_cost, check_backend, conv_cost, conv_out_size, sum_cost

__all__ = [
    "STEM_KINDS",
    "ConvBNReLU",
    "Stem",
    "ReductionBlock",
    "conv_bn_relu_cost",
    "stem_cost",
    "stem_out_shape",
    "reduction_cost",
    "stem_stride",
    "reduction_plan",
]

Shape = Tuple[int, int, int]

STEM_KINDS = ("cifar", "imagenet", "stride2")


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
        BatchNorm settings (see :class:`dso_nas.ops.BNReLU`).
    backend : {"onednn", "reference"}
        Form of the BN-ReLU.
    dilation : int
        Dilation of the convolution (padding ``dilation·(kernel // 2)`` keeps "same" size).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride
        self.affine, self.dilation, self.backend = affine, dilation, check_backend(backend)
        with self.name_scope():
            self.conv = nn.Conv2D(c_out, kernel, strides=stride, padding=dilation * (kernel // 2),
                                  dilation=dilation, use_bias=False, in_channels=c_in)
            self.bn = BNReLU(c_out, affine, bn_eps, bn_momentum, self.backend)

    def hybrid_forward(self, F, x):
        return self.bn(self.conv(x))

    def out_shape(self, height: int, width: int) -> Shape:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        return (self.c_out, conv_out_size(height, self.kernel, self.stride, dilation=self.dilation),
                conv_out_size(width, self.kernel, self.stride, dilation=self.dilation))

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``height x width``."""
        return conv_bn_relu_cost(self.c_in, self.c_out, self.kernel, height, width,
                                 self.stride, self.affine, self.dilation)


def conv_bn_relu_cost(c_in: int, c_out: int, kernel: int, height: int, width: int,
                      stride: int = 1, affine: bool = True, dilation: int = 1) -> Cost:
    """Analytic cost of :class:`ConvBNReLU`."""
    return (conv_cost(c_in, c_out, kernel, height, width, stride, dilation=dilation)
            + bn_cost(c_out, affine=affine))


# ----------------------------------------------------------------------------- Stem


def _stem_layers(kind: str, in_channels: int, channels: int):
    """``[(c_in, c_out, kernel, stride), ...]`` of a stem."""
    if kind == "cifar":
        return [(in_channels, channels, 3, 1)]
    if kind == "imagenet":
        mid = max(channels // 2, 1)
        return [(in_channels, mid, 3, 2), (mid, channels, 3, 2)]
    if kind == "stride2":
        return [(in_channels, channels, 3, 2)]
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
    backend : {"onednn", "reference"}
        Form of the BN-ReLUs.
    """

    def __init__(self, kind: str, in_channels: int, channels: int, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.in_channels, self.channels = kind, in_channels, channels
        self.affine = affine
        layers = _stem_layers(kind, in_channels, channels)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            for c_in, c_out, kernel, stride in layers:
                self.body.add(ConvBNReLU(c_in, c_out, kernel, stride, affine, bn_eps, bn_momentum, backend))

    def hybrid_forward(self, F, x):
        return self.body(x)

    def out_shape(self, height: int, width: int) -> Shape:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        return stem_out_shape(self.kind, self.in_channels, self.channels, height, width)

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``height x width``."""
        return stem_cost(self.kind, self.in_channels, self.channels, height, width, self.affine)


def stem_stride(kind: str) -> int:
    """Output stride of a stem (1 ``cifar``, 2 ``stride2``, 4 ``imagenet``)."""
    stride = 1
    for _, _, _, s in _stem_layers(kind, 1, 2):
        stride *= s
    return stride


def reduction_plan(stem: str, reductions: int, output_stride: int = 0) -> Tuple[Tuple[int, int, int], ...]:
    """``(stride, dilation, next dilation)`` of each reduction block after a ``stem``.

    ``output_stride=0`` strides every reduction (classification). Otherwise a reduction whose
    stride would take the map past ``output_stride`` keeps the resolution (stride 1), its
    ``3 x 3`` conv keeps the dilation of the stage before it, and the stages after it dilate
    by twice as much: DeepLabv3's atrous backbone (GluonCV's dilated ResNets use the same rule).
    ``ConfigError`` unless ``output_stride`` is a power of two at least the stem's stride and at
    most the network's own final stride.
    """
    first = stem_stride(stem)
    native = first * 2 ** reductions
    if output_stride and (output_stride & (output_stride - 1) or not first <= output_stride <= native):
        raise ConfigError(f"model.output_stride={output_stride} must be a power of two between the stem's "
                          f"stride {first} and the network's own final stride {native} (0 = {native})")
    plan, stride, dilation = [], first, 1
    for _ in range(reductions):
        if output_stride and stride * 2 > output_stride:
            plan.append((1, dilation, dilation * 2))
            dilation *= 2
        else:
            plan.append((2, dilation, dilation))
            stride *= 2
    return tuple(plan)


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
    backend : {"onednn", "reference"}
        Form of the BN-ReLUs.
    stride, dilation : int
        ``2, 1`` (the paper); ``1, 2`` keeps the resolution and dilates the ``3 x 3`` branch
        (output stride 16 for segmentation).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, backend: str = REFERENCE, stride: int = 2,
                 dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.c_in, self.c_out, self.affine = c_in, c_out, affine
        self.stride, self.dilation = stride, dilation
        with self.name_scope():
            self.conv1 = ConvBNReLU(c_in, c_out, 1, stride, affine, bn_eps, bn_momentum, backend,
                                    prefix="conv1x1_")
            self.conv3 = ConvBNReLU(c_in, c_out, 3, stride, affine, bn_eps, bn_momentum, backend,
                                    dilation=dilation, prefix="conv3x3_")

    def hybrid_forward(self, F, x):
        return self.conv1(x) + self.conv3(x)

    def out_shape(self, height: int, width: int) -> Shape:
        """``(C, H, W)`` of the output for an input of ``height x width``."""
        return (self.c_out, conv_out_size(height, 3, self.stride, dilation=self.dilation),
                conv_out_size(width, 3, self.stride, dilation=self.dilation))

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``height x width``."""
        return reduction_cost(self.c_in, self.c_out, height, width, self.affine, self.stride, self.dilation)


def reduction_cost(c_in: int, c_out: int, height: int, width: int, affine: bool = True,
                   stride: int = 2, dilation: int = 1) -> Cost:
    """Analytic cost of :class:`ReductionBlock` (two branches plus the sum)."""
    h_out = conv_out_size(height, 3, stride, dilation=dilation)
    w_out = conv_out_size(width, 3, stride, dilation=dilation)
    return (conv_bn_relu_cost(c_in, c_out, 1, height, width, stride, affine)
            + conv_bn_relu_cost(c_in, c_out, 3, height, width, stride, affine, dilation)
            + sum_cost(2, c_out, h_out, w_out))
