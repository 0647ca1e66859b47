"""Layers behind the operations, each in two forms (:mod:`dso_nas.ops.backends`).

* :class:`BNReLU` - ``ReLU(BatchNorm(x))``, one fused oneDNN operator in the ``"onednn"`` form;
* :class:`DepthwiseConv` - a ``k x k`` depthwise convolution; ``"onednn"`` computes a kernel
  wider than 3 as a sum of ``k x 3`` ones (:func:`depthwise_column_split`), whose weight
  gradient oneDNN computes with its depthwise kernel instead of an im2col GEMM
  (``5 x 5``: about 1.6x faster);
* :func:`pool2d` (and its block :class:`Pool2D`) - ``k x k`` pooling; ``"onednn"`` reads its input through
  :func:`to_blocked_layout` (an exact ``1 x 1`` depthwise identity convolution), so oneDNN
  pools in its blocked layout with its vectorized kernel instead of its reference kernel
  for plain NCHW maps (3-8x faster forward+backward, see BENCHMARKS.md);
* :func:`global_avg_pool` - the mean of every map.

``affine=False`` builds BN with γ fixed to one (``BatchNorm(scale=False)``, i.e. the
operator's ``fix_gamma``; γ gets ``grad_req='null'``) and β still learnable: the paper fixes
"the scaling parameters in BN" to one during pre-training and search so that they cannot
absorb the scale of the λ in front of them.
"""
from __future__ import annotations

from typing import Dict

from mxnet.gluon import HybridBlock, nn

from .backends import ONEDNN, REFERENCE, check_backend

__all__ = ["BNReLU", "DepthwiseConv", "depthwise_column_split", "to_blocked_layout", "pool2d", "Pool2D",
           "global_avg_pool"]


class BNReLU(nn.BatchNorm):
    """``ReLU(BatchNorm(x))``, the package's only BatchNorm (every one is followed by a ReLU).

    γ is learnable only when ``affine`` (else fixed to 1: ``fix_gamma``, ``grad_req='null'``),
    β is always learnable. The same Parameters as ``nn.BatchNorm`` (γ, β, running mean and variance), so a
    checkpoint does not depend on the implementation. With ``backend="onednn"`` the two are one
    oneDNN operator (``contrib.BatchNormWithReLU``, CPU only) that keeps its result in
    oneDNN's blocked layout; the plain ``relu`` after a ``BatchNorm`` first converts the map
    back to NCHW and cost about as much as the BatchNorm itself, forward and backward.

    The fused operator's gradients are right in training mode only: back-propagated in
    inference mode (``autograd.record(train_mode=False)``) it returns wrong input and β
    gradients in MXNet 1.9.1. Nothing in this package does that; build with
    ``backend="reference"`` if you need it.
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
    backend : {"onednn", "reference"}
        ``"reference"``: ``F.relu(F.BatchNorm(...))`` (the default); ``"onednn"``: the fused operator.
    """

    def __init__(self, channels: int, affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, backend: str = REFERENCE, **kwargs):
        super().__init__(axis=1, momentum=bn_momentum, epsilon=bn_eps, center=True,
                         scale=affine, in_channels=channels, **kwargs)
        self.backend = check_backend(backend)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        if self.backend == ONEDNN:
            return F.contrib.BatchNormWithReLU(x, gamma, beta, running_mean, running_var,
                                               name="fwd", **self._kwargs)
        return F.relu(super().hybrid_forward(F, x, gamma, beta, running_mean, running_var))



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
    """Depthwise ``kernel x kernel`` convolution, pad ``dilation·(kernel // 2)``, no bias.

    A ``gluon.nn.Conv2D`` (same Parameter, same names); with ``backend="onednn"`` an undilated
    kernel wider than 3 is computed by :func:`depthwise_column_split`.

    Parameters
    ----------
    channels : int
        Input and output channels (one group each).
    kernel, stride : int
        Window (odd) and stride.
    backend : {"onednn", "reference"}
        See :mod:`dso_nas.ops.backends` (default ``"reference"``).
    dilation : int
        Dilation (DeepLabv3's atrous convolution past the output stride); "same" padding keeps
        the map size, so the cost does not depend on it.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1,
                 backend: str = REFERENCE, dilation: int = 1, **kwargs):
        super().__init__(channels, kernel, strides=stride, padding=dilation * (kernel // 2), dilation=dilation,
                         groups=channels, use_bias=False, in_channels=channels, **kwargs)
        self.kernel, self.stride, self.backend = kernel, stride, check_backend(backend)
        self.dilation = dilation

    def hybrid_forward(self, F, x, weight, bias=None):
        if self.backend == ONEDNN and self.dilation == 1 and _column_split_applies(self.kernel, self.stride):
            return depthwise_column_split(F, x, weight, self._channels, self.kernel,
                                          self.stride)
        return super().hybrid_forward(F, x, weight, bias)


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
           backend: str = ONEDNN):
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
    backend : {"onednn", "reference"}
        ``"reference"``: one ``F.Pooling`` on ``x``; ``"onednn"``: the same ``F.Pooling`` on
        :func:`to_blocked_layout` of ``x`` (same values and gradients, about 4-10x faster
        forward+backward on an MKLDNN CPU build; on other builds it costs one extra copy).
    """
    kwargs = _pool_kwargs(pool_type, kernel, stride)
    if backend == REFERENCE:
        return F.Pooling(x, **kwargs)
    return F.Pooling(to_blocked_layout(F, x, channels), **kwargs)


class Pool2D(HybridBlock):
    """:func:`pool2d` as a block: ``k x k`` max or average pooling, pad ``k // 2`` (average excludes the padding).

    Parameters
    ----------
    pool_type : {"max", "avg"}
        Pooling kind.
    channels : int
        Input (and output) channels.
    kernel, stride : int
        Window and stride.
    backend : {"onednn", "reference"}
        Form of the pooling (:func:`~dso_nas.ops.layers.pool2d`).
    """

    def __init__(self, pool_type: str, channels: int, kernel: int = 3, stride: int = 1,
                 backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        if pool_type not in ("max", "avg"):
            raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
        self.pool_type, self.channels, self.kernel, self.stride = pool_type, channels, kernel, stride
        self.backend = check_backend(backend)

    def hybrid_forward(self, F, x):
        return pool2d(F, x, self.pool_type, self.channels, self.kernel, self.stride, self.backend)


def global_avg_pool(F, x, backend: str = ONEDNN):
    """``(B, C, H, W) -> (B, C)``: the mean of every map.

    ``"reference"``: ``F.Pooling(global_pool=True)`` then ``flatten``. ``"onednn"``:
    ``F.mean`` over the spatial axes: oneDNN 1.9.1's global pooling fails to create its
    backward primitive ("could not create a primitive descriptor iterator") when its input
    comes from the fused BN-ReLU of :class:`BNReLU` (most shapes; seen with 8x14x14 and
    48x32x32 maps), and a mean costs nothing next to the network.
    """
    if backend == REFERENCE:
        return F.flatten(F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type="avg"))
    return F.mean(x, axis=(2, 3))

