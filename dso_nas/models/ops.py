"""The candidate operations of a search block and the analytic cost model.

One table, :data:`OPS`, maps an operation name to an :class:`OpSpec` with a uniform
constructor and an analytic cost; the supernet and the derived network both build their
operations from it, so the two can never disagree about what ``sep_conv_3x3`` is.

Operations (the authors' release):

* ``sep_conv_kxk``: depthwise ``k x k`` conv (groups = C, pad ``k // 2``, no bias, carries
  the stride) -> pointwise ``1 x 1`` conv (no bias) -> BN -> ReLU. One depthwise/pointwise
  pair, no leading ReLU (TPAMI §3.1: "conv-batchnorm-ReLU").
* ``avg_pool_3x3`` / ``max_pool_3x3``: ``3 x 3`` pooling (pad 1; average pooling excludes the
  padding from the count) -> BN -> ReLU.

``affine=False`` builds BN with γ fixed to one (``BatchNorm(scale=False)``, i.e. the
operator's ``fix_gamma``; γ gets ``grad_req='null'``) and β still learnable: the paper fixes
"the scaling parameters in BN" to one during pre-training and search so that they cannot
absorb the scale of the λ in front of them.

Implementations (:data:`OP_IMPLS`): every operation computes the same function with the
same Parameters either way; ``"fast"`` (the default) only rearranges the computation for
MKLDNN on CPU, where the plain forms were the bottleneck of the search step:

* a pooling reads its input through :func:`to_blocked_layout` (an exact ``1 x 1``
  depthwise identity convolution), so MKLDNN pools in its blocked layout with its
  vectorized kernel instead of its reference kernel for plain NCHW maps (3-8x faster
  forward+backward, see BENCHMARKS.md);
* a depthwise convolution wider than 3 is a sum of ``k x 3`` ones
  (:func:`depthwise_column_split`), whose weight gradient oneDNN computes with its
  depthwise kernel instead of an im2col GEMM (``5 x 5``: about 1.6x faster).
* BN -> ReLU is one fused oneDNN operator (:class:`BNReLU`), which keeps the map in the
  blocked layout instead of converting it back to NCHW for a separate ``relu``.

:func:`impl_for_contexts` picks ``"fast"`` for training on one CPU context of a oneDNN
build and ``"reference"`` elsewhere (the fused BN-ReLU has no GPU kernel).

``"reference"`` is one ``F.Pooling`` / one ``F.Convolution``. :func:`graph_cost` always
traces the reference form; the cost model describes the math, not the implementation.

Cost model (:class:`Cost`), used everywhere in the package:

* ``params``: trainable parameters only: conv/dense weights and biases, BN β, and BN γ only
  when it is learnable (``affine=True``). BN running statistics are excluded.
* ``flops``: multiply-adds of convolutions (``k·k·c_in/groups·c_out·h_out·w_out``) and dense
  layers (``in·out``), plus ``k·k·c·h_out·w_out`` for a ``k x k`` pooling (a global average
  pooling is a pooling whose window is the whole map). BN, ReLU and element-wise sums
  are not counted (BN folds into the preceding conv at inference).
* ``mac``: memory access cost in elements, as in ShuffleNet v2: every conv, pooling or dense
  layer reads its input map and weights and writes its output map; an ``n``-input
  element-wise sum reads ``n`` maps and writes one. BN and ReLU are taken to be fused into
  the layer before them (no extra traffic).
"""
from __future__ import annotations

import ast
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from dso_nas.errors import ConfigError

__all__ = [
    "Cost",
    "total",
    "OpSpec",
    "OPS",
    "OP_NAMES",
    "build_op",
    "op_cost",
    "conv_out_size",
    "conv_cost",
    "bn_cost",
    "pool_cost",
    "dense_cost",
    "sum_cost",
    "graph_cost",
    "BNReLU",
    "SepConv",
    "PoolBNReLU",
    "DepthwiseConv",
    "OP_IMPLS",
    "default_op_impl",
    "op_impl",
    "impl_for_contexts",
    "resolve_impl",
    "pool2d",
    "global_avg_pool",
    "to_blocked_layout",
    "depthwise_column_split",
]


@dataclass(frozen=True)
class Cost:
    """Analytic cost of a piece of network.

    Attributes
    ----------
    params : int
        Trainable parameters.
    flops : int
        Multiply-adds (see the module docstring for what is counted).
    mac : int
        Memory access cost in elements (feature maps read and written plus weights read).
    """

    params: int = 0
    flops: int = 0
    mac: int = 0

    @staticmethod
    def zero() -> "Cost":
        """The neutral element, for ``sum(costs, Cost.zero())``."""
        return Cost(0, 0, 0)

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(self.params + other.params, self.flops + other.flops, self.mac + other.mac)

    def __radd__(self, other):
        # lets the builtin sum() start from 0
        if other == 0:
            return self
        return self.__add__(other)

    def as_dict(self) -> Dict[str, int]:
        """``{"params": ..., "flops": ..., "mac": ...}``."""
        return {"params": self.params, "flops": self.flops, "mac": self.mac}


def total(costs: Iterable[Cost]) -> Cost:
    """Sum of costs."""
    return sum(costs, Cost.zero())


# ----------------------------------------------------------------------------- cost helpers


def conv_out_size(size: int, kernel: int, stride: int = 1, pad: int = -1) -> int:
    """Output length of a convolution/pooling along one axis (``pad=-1`` means ``kernel // 2``)."""
    if pad < 0:
        pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


def conv_cost(c_in: int, c_out: int, kernel: int, height: int, width: int, stride: int = 1,
              groups: int = 1, bias: bool = False, pad: int = -1) -> Cost:
    """Cost of a ``kernel x kernel`` convolution on a ``c_in x height x width`` input."""
    h_out = conv_out_size(height, kernel, stride, pad)
    w_out = conv_out_size(width, kernel, stride, pad)
    weights = kernel * kernel * (c_in // groups) * c_out
    params = weights + (c_out if bias else 0)
    flops = weights * h_out * w_out
    mac = c_in * height * width + c_out * h_out * w_out + params
    return Cost(params, flops, mac)


def bn_cost(channels: int, height: int = 0, width: int = 0, affine: bool = True) -> Cost:
    """Cost of a BatchNorm: only its trainable parameters (β, and γ when ``affine``).

    ``height``/``width`` are accepted for a uniform signature; BN adds no FLOPs/MAC here
    (fused into the layer before it).
    """
    del height, width
    return Cost(params=channels * (2 if affine else 1))


def pool_cost(channels: int, kernel: int, height: int, width: int, stride: int = 1,
              pad: int = -1) -> Cost:
    """Cost of a ``kernel x kernel`` pooling: ``k·k·c`` per output position, no parameters."""
    h_out = conv_out_size(height, kernel, stride, pad)
    w_out = conv_out_size(width, kernel, stride, pad)
    flops = kernel * kernel * channels * h_out * w_out
    mac = channels * height * width + channels * h_out * w_out
    return Cost(0, flops, mac)


def dense_cost(in_units: int, out_units: int, bias: bool = True) -> Cost:
    """Cost of a fully connected layer on a vector of ``in_units``."""
    weights = in_units * out_units
    params = weights + (out_units if bias else 0)
    return Cost(params, weights, in_units + out_units + params)


def sum_cost(n_inputs: int, channels: int, height: int, width: int) -> Cost:
    """Cost of an element-wise sum of ``n_inputs`` maps (nothing when ``n_inputs < 2``)."""
    if n_inputs < 2:
        return Cost.zero()
    return Cost(0, 0, (n_inputs + 1) * channels * height * width)


# ----------------------------------------------------------------------------- blocks


class BNReLU(nn.BatchNorm):
    """``ReLU(BatchNorm(x))``, the package's only BatchNorm (every one is followed by a ReLU).

    γ is learnable only when ``affine`` (else fixed to 1: ``fix_gamma``, ``grad_req='null'``),
    β is always learnable. The same Parameters as ``nn.BatchNorm`` (γ, β, running mean and variance), so a
    checkpoint does not depend on the implementation. With ``impl="fast"`` the two are one
    oneDNN operator (``contrib.BatchNormWithReLU``, CPU only) that keeps its result in
    oneDNN's blocked layout; the plain ``relu`` after a ``BatchNorm`` first converts the map
    back to NCHW and cost about as much as the BatchNorm itself, forward and backward.

    The fused operator's gradients are right in training mode only: back-propagated in
    inference mode (``autograd.record(train_mode=False)``) it returns wrong input and β
    gradients in MXNet 1.9.1. Nothing in this package does that; build with
    ``impl="reference"`` if you need it.
    And oneDNN's global pooling cannot back-propagate into it ("could not create a
    primitive descriptor iterator"): pool with :func:`global_avg_pool`, as the package's
    classifiers do, not with ``nn.GlobalAvgPool2D``.

    Parameters
    ----------
    channels : int
        Channels of the input (axis 1).
    affine : bool
        Learnable γ (else fixed to 1).
    bn_eps, bn_momentum : float
        BatchNorm ε and moving-average momentum.
    impl : {"fast", "reference"}, optional
        ``"reference"``: ``F.relu(F.BatchNorm(...))``; ``None`` takes :func:`default_op_impl`.
    """

    def __init__(self, channels: int, affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, impl: Optional[str] = None, **kwargs):
        super().__init__(axis=1, momentum=bn_momentum, epsilon=bn_eps, center=True,
                         scale=affine, in_channels=channels, **kwargs)
        self.impl = resolve_impl(impl)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        if self.impl == "fast":
            return F.contrib.BatchNormWithReLU(x, gamma, beta, running_mean, running_var,
                                               name="fwd", **self._kwargs)
        return F.relu(super().hybrid_forward(F, x, gamma, beta, running_mean, running_var))


# ----------------------------------------------------------------------------- implementations

#: How the operations are computed. ``"reference"``: one ``F.Convolution`` per depthwise
#: convolution and one ``F.Pooling`` per pooling; ``"fast"``: the same functions (same
#: parameters, same values up to float rounding, same gradients) in a form that MKLDNN
#: runs much faster on CPU (see :class:`DepthwiseConv` and :func:`pool2d`).
OP_IMPLS = ("fast", "reference")

_DEFAULT_OP_IMPL = ["fast"]


def default_op_impl() -> str:
    """The implementation of the operations built with ``impl=None``."""
    return _DEFAULT_OP_IMPL[0]


@contextmanager
def op_impl(impl: str) -> Iterator[None]:
    """Make ``impl`` the default of the operations built inside the ``with``.

    The supernet and the derived network build their operations through :func:`build_op`,
    which takes no implementation; this switches it for the blocks constructed in the scope
    (the benchmark compares the two this way). A block keeps the implementation it was
    built with.
    """
    _check_op_impl(impl)
    previous = _DEFAULT_OP_IMPL[0]
    _DEFAULT_OP_IMPL[0] = impl
    try:
        yield
    finally:
        _DEFAULT_OP_IMPL[0] = previous


def impl_for_contexts(ctxs: Sequence[mx.Context]) -> str:
    """The implementation to build a network with for training on ``ctxs``.

    ``"fast"`` for one CPU context on a build with oneDNN (MKLDNN): its forms are
    rearrangements for oneDNN, and ``contrib.BatchNormWithReLU`` has no GPU kernel.
    ``"reference"`` otherwise: GPUs, a CPU build without oneDNN, and several CPU contexts,
    where the fused BN-ReLU of the contexts, running at the same time, now and then
    moved one context's BN running mean wrongly (3 runs in 8 of a two-context test).
    Both forms compute the same function with the same Parameters, so checkpoints move
    freely between them.
    """
    ctxs = list(ctxs)
    one_cpu = len(ctxs) == 1 and ctxs[0].device_type == "cpu"
    return "fast" if one_cpu and mx.runtime.Features().is_enabled("MKLDNN") else "reference"


def _check_op_impl(impl: str) -> None:
    if impl not in OP_IMPLS:
        raise ConfigError(f"unknown operation implementation {impl!r}; valid: "
                          f"{', '.join(OP_IMPLS)}")


def resolve_impl(impl: Optional[str]) -> str:
    """``impl``, or :func:`default_op_impl` when ``None``; ``ConfigError`` if unknown."""
    impl = default_op_impl() if impl is None else impl
    _check_op_impl(impl)
    return impl


def depthwise_column_split(F, x, weight, channels: int, kernel: int, stride: int):
    """A ``k x k`` depthwise convolution (pad ``k // 2``) as a sum of ``k x 3`` ones.

    oneDNN 2.4 computes the weight gradient of a depthwise convolution with its fast
    kernel only when the kernel is at most 3 wide with "same" padding; a ``5 x 5`` falls
    back to an im2col GEMM (about 90 % of the ``5 x 5`` forward+backward time). Here the
    input is zero-padded by ``k // 2 - 1`` columns, and chunk ``t`` (kernel columns
    ``2t..2t+2``, the first of them zeroed for ``t > 0`` since chunk ``t - 1`` covers it)
    is a ``k x 3`` convolution with pad ``(k // 2, 1)`` whose output, shifted by ``2t /
    stride`` columns, is that chunk's share of the result. Odd ``k > 3``, stride 1 or 2.
    """
    pad = kernel // 2
    padded = F.Pad(x, mode="constant", constant_value=0,
                   pad_width=(0, 0, 0, 0, 0, 0, pad - 1, pad - 1))
    zero_column = F.zeros_like(F.slice_axis(weight, axis=3, begin=0, end=1))
    extra = (kernel - 3) // stride  # output columns a chunk computes beyond the result's
    parts = []
    for t in range((kernel - 1) // 2):
        if t == 0:
            chunk = F.slice_axis(weight, axis=3, begin=0, end=3)
        else:
            chunk = F.concat(zero_column, F.slice_axis(weight, axis=3, begin=2 * t + 1,
                                                       end=2 * t + 3), dim=3)
        part = F.Convolution(padded, weight=chunk, kernel=(kernel, 3), stride=(stride, stride),
                             pad=(pad, 1), num_filter=channels, num_group=channels,
                             no_bias=True)
        begin = 2 * t // stride
        end = begin - extra
        parts.append(F.slice_axis(part, axis=3, begin=begin, end=end if end < 0 else None))
    return F.add_n(*parts)


def _column_split_applies(kernel: int, stride: int) -> bool:
    return kernel > 3 and kernel % 2 == 1 and stride in (1, 2)


class DepthwiseConv(nn.Conv2D):
    """Depthwise ``kernel x kernel`` convolution, pad ``kernel // 2``, no bias.

    A ``gluon.nn.Conv2D`` (same Parameter, same names); with ``impl="fast"`` a kernel wider
    than 3 is computed by :func:`depthwise_column_split`.

    Parameters
    ----------
    channels : int
        Input and output channels (one group each).
    kernel, stride : int
        Window (odd) and stride.
    impl : {"fast", "reference"}, optional
        See :data:`OP_IMPLS`; ``None`` takes :func:`default_op_impl`.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1,
                 impl: Optional[str] = None, **kwargs):
        super().__init__(channels, kernel, strides=stride, padding=kernel // 2,
                         groups=channels, use_bias=False, in_channels=channels, **kwargs)
        self.kernel, self.stride, self.impl = kernel, stride, resolve_impl(impl)

    def hybrid_forward(self, F, x, weight, bias=None):
        if self.impl == "fast" and _column_split_applies(self.kernel, self.stride):
            return depthwise_column_split(F, x, weight, self._channels, self.kernel,
                                          self.stride)
        return super().hybrid_forward(F, x, weight, bias)


class SepConv(HybridBlock):
    """Depthwise ``kernel x kernel`` conv -> pointwise ``1 x 1`` conv -> BN -> ReLU.

    Parameters
    ----------
    channels : int
        Input and output channels.
    kernel : int
        Depthwise kernel size (odd); padding ``kernel // 2``.
    stride : int
        Stride of the depthwise convolution.
    affine, bn_eps, bn_momentum
        BatchNorm settings (see :class:`BNReLU`).
    impl : {"fast", "reference"}, optional
        How the depthwise convolution (:class:`DepthwiseConv`) and the BN-ReLU
        (:class:`BNReLU`) are computed; ``None`` takes :func:`default_op_impl`.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, impl: Optional[str] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.impl = resolve_impl(impl)
        with self.name_scope():
            self.depthwise = DepthwiseConv(channels, kernel, stride, self.impl)
            self.pointwise = nn.Conv2D(channels, 1, use_bias=False, in_channels=channels)
            self.bn = BNReLU(channels, affine, bn_eps, bn_momentum, self.impl)

    def hybrid_forward(self, F, x):
        return self.bn(self.pointwise(self.depthwise(x)))


def sep_conv_cost(channels: int, kernel: int, height: int, width: int, stride: int = 1,
                  affine: bool = True) -> Cost:
    """Analytic cost of :class:`SepConv`."""
    h_out = conv_out_size(height, kernel, stride)
    w_out = conv_out_size(width, kernel, stride)
    return (conv_cost(channels, channels, kernel, height, width, stride, groups=channels)
            + conv_cost(channels, channels, 1, h_out, w_out)
            + bn_cost(channels, affine=affine))


# ----------------------------------------------------------------------------- pooling

def to_blocked_layout(F, x, channels: int):
    """``x`` itself, computed by a ``1 x 1`` depthwise convolution with a kernel of ones.

    On MKLDNN builds the result is stored in MKLDNN's blocked layout, for which the
    following pooling takes its vectorized kernel instead of the reference kernel it uses on
    a plain NCHW map (10x slower here). Multiplying by one is exact, so values and
    gradients are untouched; the kernel is a constant built from ``x`` (no Parameter, no
    gradient), so nothing is added to the parameters or checkpoints.
    """
    corner = F.slice(x, begin=(0, 0, 0, 0), end=(1, None, 1, 1))
    ones = F.BlockGrad(F.ones_like(F.reshape(corner, shape=(-1, 1, 1, 1))))
    return F.Convolution(x, weight=ones, kernel=(1, 1), num_filter=channels,
                         num_group=channels, no_bias=True)


def _pool_kwargs(pool_type: str, kernel: int, stride: int) -> Dict[str, object]:
    kwargs = dict(kernel=(kernel, kernel), stride=(stride, stride),
                  pad=(kernel // 2, kernel // 2), pool_type=pool_type,
                  pooling_convention="valid")
    if pool_type == "avg":
        kwargs["count_include_pad"] = False
    return kwargs


def pool2d(F, x, pool_type: str, channels: int, kernel: int = 3, stride: int = 1,
           impl: str = "fast"):
    """``k x k`` max or average pooling with pad ``k // 2`` (average excludes the padding).

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    x : NDArray or Symbol
        ``(B, C, H, W)`` input.
    pool_type : {"max", "avg"}
        Pooling kind.
    channels : int
        C.
    kernel, stride : int
        Window and stride.
    impl : {"fast", "reference"}
        ``"reference"``: one ``F.Pooling`` on ``x``; ``"fast"``: the same ``F.Pooling`` on
        :func:`to_blocked_layout` of ``x`` (same values and gradients, about 4-10x faster
        forward+backward on an MKLDNN CPU build; on other builds it costs one extra copy).
    """
    kwargs = _pool_kwargs(pool_type, kernel, stride)
    if impl == "reference":
        return F.Pooling(x, **kwargs)
    return F.Pooling(to_blocked_layout(F, x, channels), **kwargs)


def global_avg_pool(F, x, impl: str = "fast"):
    """``(B, C, H, W) -> (B, C)``: the mean of every map.

    ``"reference"``: ``F.Pooling(global_pool=True)`` then ``flatten``. ``"fast"``:
    ``F.mean`` over the spatial axes: oneDNN 1.9.1's global pooling fails to create its
    backward primitive ("could not create a primitive descriptor iterator") when its input
    comes from the fused BN-ReLU of :class:`BNReLU` (most shapes; seen with 8x14x14 and
    48x32x32 maps), and a mean costs nothing next to the network.
    """
    if impl == "reference":
        return F.flatten(F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type="avg"))
    return F.mean(x, axis=(2, 3))


class PoolBNReLU(HybridBlock):
    """``3 x 3`` max or average pooling (pad 1) -> BN -> ReLU.

    Parameters
    ----------
    pool_type : {"max", "avg"}
        Average pooling does not count the padding.
    channels : int
        Input and output channels (for the BN).
    kernel, stride
        Pooling window and stride; padding ``kernel // 2``.
    affine, bn_eps, bn_momentum
        BatchNorm settings (see :class:`BNReLU`).
    impl : {"fast", "reference"}, optional
        How the pooling (see :func:`pool2d`) and the BN-ReLU (:class:`BNReLU`) are
        computed (same numbers); ``None`` takes :func:`default_op_impl`.
    """

    def __init__(self, pool_type: str, channels: int, kernel: int = 3, stride: int = 1,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 impl: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        if pool_type not in ("max", "avg"):
            raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
        self.pool_type, self.channels, self.kernel, self.stride = pool_type, channels, kernel, stride
        self.impl = resolve_impl(impl)
        with self.name_scope():
            self.bn = BNReLU(channels, affine, bn_eps, bn_momentum, self.impl)

    def hybrid_forward(self, F, x):
        return self.bn(pool2d(F, x, self.pool_type, self.channels, self.kernel, self.stride,
                              self.impl))


def pool_bn_relu_cost(channels: int, kernel: int, height: int, width: int, stride: int = 1,
                      affine: bool = True) -> Cost:
    """Analytic cost of :class:`PoolBNReLU`."""
    return pool_cost(channels, kernel, height, width, stride) + bn_cost(channels, affine=affine)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class OpSpec:
    """One candidate operation: how to build it and what it costs.

    ``build(channels, stride=1, affine=True, bn_eps=2e-5, bn_momentum=0.9) -> HybridBlock``
    and ``cost(channels, height, width, stride=1, affine=True) -> Cost`` (``height``/``width``
    are the input's spatial size). Every op maps ``C`` channels to ``C`` channels.
    """

    name: str
    builder: Callable[..., HybridBlock]
    coster: Callable[..., Cost]

    def build(self, channels: int, stride: int = 1, affine: bool = True, bn_eps: float = 2e-5,
              bn_momentum: float = 0.9, **kwargs) -> HybridBlock:
        """A fresh block of this op (``kwargs`` go to its constructor: ``prefix``, ``impl``)."""
        return self.builder(channels, stride, affine, bn_eps, bn_momentum, **kwargs)

    def cost(self, channels: int, height: int, width: int, stride: int = 1,
             affine: bool = True) -> Cost:
        """Analytic cost on a ``channels x height x width`` input."""
        return self.coster(channels, height, width, stride, affine)


def _sep_conv_spec(kernel: int) -> OpSpec:
    return OpSpec(
        name=f"sep_conv_{kernel}x{kernel}",
        builder=lambda c, s, a, eps, mom, **kw: SepConv(c, kernel, s, a, eps, mom, **kw),
        coster=lambda c, h, w, s, a: sep_conv_cost(c, kernel, h, w, s, a),
    )


def _pool_spec(pool_type: str) -> OpSpec:
    return OpSpec(
        name=f"{pool_type}_pool_3x3",
        builder=lambda c, s, a, eps, mom, **kw: PoolBNReLU(pool_type, c, 3, s, a, eps, mom, **kw),
        coster=lambda c, h, w, s, a: pool_bn_relu_cost(c, 3, h, w, s, a),
    )


#: The operation table, in the paper's order (the first four) plus ``sep_conv_7x7``
#: for the N = 5 ablation.
OPS: Dict[str, OpSpec] = {
    spec.name: spec
    for spec in (_sep_conv_spec(3), _sep_conv_spec(5), _pool_spec("avg"), _pool_spec("max"),
                 _sep_conv_spec(7))
}

OP_NAMES = tuple(OPS)


def _spec(name: str) -> OpSpec:
    try:
        return OPS[name]
    except KeyError:
        raise ConfigError(
            f"unknown operation {name!r}; valid operations: {', '.join(OPS)}") from None


def build_op(name: str, channels: int, stride: int = 1, affine: bool = True,
             bn_eps: float = 2e-5, bn_momentum: float = 0.9, **kwargs) -> HybridBlock:
    """Build operation ``name`` (see :data:`OPS`); raises ``ConfigError`` on an unknown name."""
    return _spec(name).build(channels, stride, affine, bn_eps, bn_momentum, **kwargs)


def op_cost(name: str, channels: int, height: int, width: int, stride: int = 1,
            affine: bool = True) -> Cost:
    """Analytic cost of operation ``name``; raises ``ConfigError`` on an unknown name."""
    return _spec(name).cost(channels, height, width, stride, affine)


def check_ops(names: Iterable[str]) -> None:
    """Raise ``ConfigError`` if any name is not in :data:`OPS`."""
    for name in names:
        _spec(name)


# ----------------------------------------------------------------------------- measurement


@contextmanager
def _reference_ops(block: HybridBlock) -> Iterator[None]:
    """Trace every block under ``block`` that has an ``impl`` with its ``"reference"`` form
    inside the ``with``."""
    found = []
    block.apply(lambda b: found.append((b, b.impl))
                if getattr(b, "impl", None) in OP_IMPLS else None)
    try:
        for op, _ in found:
            op.impl = "reference"
        yield
    finally:
        for op, impl in found:
            op.impl = impl


def graph_cost(block: HybridBlock, input_shape: Sequence[int],
               exclude: str = r".*lambda$") -> Cost:
    """Params and FLOPs of a built block, measured from its symbolic graph.

    The independent check of the analytic model: trainable parameters are counted from
    the shapes of the block's Parameters (``grad_req != 'null'``, names matching ``exclude``
    left out), FLOPs per sample from the inferred shapes of every ``Convolution``,
    ``FullyConnected`` and ``Pooling`` node (same conventions as the module docstring).
    MAC is not measured (returned as 0). Operations are traced in their ``"reference"``
    form (one ``Convolution``/``Pooling`` node each: the math, whatever computes it).

    Parameters
    ----------
    block : HybridBlock
        An initialized block taking one input.
    input_shape : sequence of int
        ``(batch, C, H, W)`` of the input.
    exclude : str
        Regular expression of Parameter names not to count (the λ by default).
    """
    with _reference_ops(block):
        sym = block(mx.sym.var("data"))
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=tuple(input_shape))
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())["nodes"]

    def entry_shape(entry):
        node = nodes[entry[0]]
        if node["op"] == "null":
            return shapes[node["name"]]
        return shapes.get(f"{node['name']}_output", shapes.get(f"{node['name']}_output{entry[1]}"))

    flops = 0
    for node_id, node in enumerate(nodes):
        op, attrs = node["op"], node.get("attrs", {})
        if op not in ("Convolution", "FullyConnected", "Pooling"):
            continue
        out = entry_shape([node_id, 0])
        if op == "Convolution":
            flops += int(np.prod(entry_shape(node["inputs"][1]))) * int(np.prod(out[2:]))
        elif op == "FullyConnected":
            flops += int(np.prod(entry_shape(node["inputs"][1])))
        elif attrs.get("global_pool", "False") == "True":
            flops += int(np.prod(entry_shape(node["inputs"][0])[1:]))
        else:
            window = int(np.prod(ast.literal_eval(attrs["kernel"])))
            flops += window * int(np.prod(out[1:]))
    pattern = re.compile(exclude)
    params = sum(int(np.prod(shapes[name])) for name, p in block.collect_params().items()
                 if p.grad_req != "null" and not pattern.match(name))
    return Cost(params, flops, 0)
