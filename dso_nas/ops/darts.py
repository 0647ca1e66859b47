"""The operations of the DARTS cell space (Liu et al. 2019) and of NASP's larger space.

One job, one family: each op's block and its analytic cost side by side (as :mod:`.table` keeps
the dense family's), so that a form and its count change together; over 400 lines because the
family has 15 ops in 8 forms.

Every op is registered in :data:`dso_nas.ops.table.OPS` under ``"darts_" + name`` with family
``"darts"``; :func:`dso_nas.ops.table.darts_op` looks one up by its bare name. The forms (as DARTS' and NASP's
published operations):

* ``none``: zeros of the output's shape (``x[:, :, ::s, ::s] * 0``);
* ``skip_connect``: the identity at stride 1, :class:`FactorizedReduce` at stride 2;
* ``avg_pool_3x3`` (the padding not counted), ``max_pool_kxk`` (k = 3, 5, 7): bare pooling,
  pad ``k // 2``, no BN (the cell adds its own);
* ``sep_conv_kxk`` (k = 3, 5, 7): DARTS' separable conv applied twice: ReLU, depthwise
  ``k x k`` (the stride), pointwise to C_in, BN, ReLU, depthwise ``k x k``, pointwise to C_out, BN;
* ``dil_conv_kxk`` (k = 3, 5): ReLU, depthwise ``k x k`` with dilation 2, pointwise, BN;
* ``conv_1x1``, ``conv_3x3``: ReLU, conv, BN (:class:`ReLUConvBN`);
* ``conv_3x1_1x3``, ``conv_7x1_1x7``: ReLU, ``1 x k`` conv (stride along the width) to C_out,
  ``k x 1`` conv (stride along the height), BN.

BatchNorm follows DARTS' ``affine``: with ``affine=False`` neither γ nor β is learnable (not the
dense space's convention, where β always is), so such a BN has no trainable parameters. Costs
follow :mod:`dso_nas.ops.cost`; ReLU, BN, padding, slicing, concatenation and zeros add no
FLOPs nor MAC. The op table registers :func:`darts_specs` (this module does not import it:
the table imports this module).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple, TypeVar

from mxnet.gluon import HybridBlock, nn

from ..errors import ConfigError
from .backends import REFERENCE, check_backend
from .cost import Cost, conv_cost, conv_out_size, pool_cost
from .layers import DepthwiseConv, Pool2D, pool2d


__all__ = ["PREFIX", "NONE", "SKIP", "DARTS_OP_NAMES", "DARTS_V1_OPS", "NASP_7_OPS", "NASP_12_NORMAL",
           "NASP_12_REDUCE", "DartsBN", "Zero", "Identity", "FactorizedReduce", "DartsSepConv",
           "DilConv", "ReLUConvBN", "AsymConv", "darts_bn_cost", "factorized_reduce_cost", "darts_sep_conv_cost",
           "dil_conv_cost", "relu_conv_bn_cost", "asym_conv_cost", "darts_specs"]

#: The prefix of the ops' keys in the op table.
PREFIX = "darts_"
NONE = "none"
SKIP = "skip_connect"
#: Every op, by bare name: DARTS' eight, then those NASP's larger space adds.
DARTS_OP_NAMES: Tuple[str, ...] = (
    NONE, "max_pool_3x3", "avg_pool_3x3", SKIP, "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
    "dil_conv_5x5", "sep_conv_7x7", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3",
    "conv_3x1_1x3", "conv_7x1_1x7")
#: DARTS' search space (Liu et al. 2019).
DARTS_V1_OPS: Tuple[str, ...] = DARTS_OP_NAMES[:8]
#: NASP's seven ops: DARTS' without ``none``.
NASP_7_OPS: Tuple[str, ...] = tuple(n for n in DARTS_V1_OPS if n != NONE)
#: NASP's larger space: the normal cell's ops and the reduction cell's.
NASP_12_NORMAL: Tuple[str, ...] = (SKIP, "conv_3x1_1x3", "dil_conv_3x3", "conv_1x1", "conv_3x3",
                                   "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7")
NASP_12_REDUCE: Tuple[str, ...] = (SKIP, "avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7")


# ----------------------------------------------------------------------------- blocks

class DartsBN(nn.BatchNorm):
    """BatchNorm on axis 1 whose γ and β are both learnable when ``affine``, neither when not.

    Parameters
    ----------
    channels : int
        Channels of the input.
    affine : bool
        Learnable γ and β (DARTS' ``affine``).
    bn_eps, bn_momentum : float
        BatchNorm ε and moving-average momentum.
    """

    def __init__(self, channels: int, affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 **kwargs):
        super().__init__(axis=1, momentum=bn_momentum, epsilon=bn_eps, center=affine, scale=affine,
                         in_channels=channels, **kwargs)


def darts_bn_cost(channels: int, affine: bool = True) -> Cost:
    """Cost of :class:`DartsBN`: ``2·channels`` parameters when ``affine``, else nothing."""
    return Cost(params=2 * channels if affine else 0)


class Zero(HybridBlock):
    """``none``: zeros of the output's shape, ``x[:, :, ::stride, ::stride] * 0``.

    Parameters
    ----------
    stride : int
        Subsampling of the height and width.
    backend : {"onednn", "reference"}
        Accepted for the uniform constructor; both forms compute the same graph.
    """

    def __init__(self, stride: int = 1, backend: str = "reference", **kwargs):
        super().__init__(**kwargs)
        self.stride = stride
        self.backend = check_backend(backend)

    def hybrid_forward(self, F, x):
        if self.stride != 1:
            x = F.slice(x, begin=(None,) * 4, end=(None,) * 4, step=(1, 1, self.stride, self.stride))
        return x * 0


class Identity(HybridBlock):
    """``skip_connect`` at stride 1: a copy of ``x`` (a hybridized graph whose output is its
    input does not back-propagate in MXNet 1.9).

    Parameters
    ----------
    backend : {"onednn", "reference"}
        Accepted for the uniform constructor; both forms compute the same graph.
    """

    def __init__(self, backend: str = "reference", **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)

    def hybrid_forward(self, F, x):
        return F.identity(x)


class FactorizedReduce(HybridBlock):
    """ReLU, then two ``1 x 1`` stride-2 convs side by side, concatenated, then BN.

    The first conv (``c_out // 2`` filters) reads ``x``, the second (the rest) reads ``x``
    shifted by one pixel up and left (a zero row and column padded at the bottom and right),
    so both halves are ``ceil(H / 2) x ceil(W / 2)`` for odd sizes too.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels (they may differ: the cells' preprocessing).
    affine, bn_eps, bn_momentum
        BatchNorm settings (:class:`DartsBN`).
    backend : {"onednn", "reference"}
        Accepted for the uniform constructor; both forms compute the same graph.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        c_half = c_out // 2
        with self.name_scope():
            self.conv_1 = nn.Conv2D(c_half, 1, strides=2, use_bias=False, in_channels=c_in, prefix="conv1_")
            self.conv_2 = nn.Conv2D(c_out - c_half, 1, strides=2, use_bias=False, in_channels=c_in,
                                    prefix="conv2_")
            self.bn = DartsBN(c_out, affine, bn_eps, bn_momentum, prefix="bn_")

    def hybrid_forward(self, F, x):
        x = F.relu(x)
        shifted = F.slice(F.Pad(x, mode="constant", constant_value=0, pad_width=(0, 0, 0, 0, 0, 1, 0, 1)),
                          begin=(None, None, 1, 1), end=(None,) * 4)
        return self.bn(F.concat(self.conv_1(x), self.conv_2(shifted), dim=1))


def factorized_reduce_cost(c_in: int, c_out: int, height: int, width: int, affine: bool = True) -> Cost:
    """Analytic cost of :class:`FactorizedReduce` on a ``c_in x height x width`` input."""
    c_half = c_out // 2
    return (conv_cost(c_in, c_half, 1, height, width, 2) + conv_cost(c_in, c_out - c_half, 1, height, width, 2)
            + darts_bn_cost(c_out, affine))


class DartsSepConv(HybridBlock):
    """DARTS' ``sep_conv_kxk``: (ReLU, depthwise, pointwise, BN) twice; only the first depthwise strides.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels (the first pointwise conv keeps ``c_in``).
    kernel, stride : int
        Depthwise kernel (odd, pad ``dilation·(kernel // 2)``) and the first one's stride.
    affine, bn_eps, bn_momentum
        BatchNorm settings (:class:`DartsBN`).
    backend : {"onednn", "reference"}
        Form of the depthwise convolutions (:class:`~dso_nas.ops.layers.DepthwiseConv`).
    dilation : int
        Dilation of both depthwise convolutions (output stride 16).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE, dilation: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        with self.name_scope():
            self.dw_1 = DepthwiseConv(c_in, kernel, stride, self.backend, dilation=dilation, prefix="dw1_")
            self.pw_1 = nn.Conv2D(c_in, 1, use_bias=False, in_channels=c_in, prefix="pw1_")
            self.bn_1 = DartsBN(c_in, affine, bn_eps, bn_momentum, prefix="bn1_")
            self.dw_2 = DepthwiseConv(c_in, kernel, 1, self.backend, dilation=dilation, prefix="dw2_")
            self.pw_2 = nn.Conv2D(c_out, 1, use_bias=False, in_channels=c_in, prefix="pw2_")
            self.bn_2 = DartsBN(c_out, affine, bn_eps, bn_momentum, prefix="bn2_")

    def hybrid_forward(self, F, x):
        x = self.bn_1(self.pw_1(self.dw_1(F.relu(x))))
        return self.bn_2(self.pw_2(self.dw_2(F.relu(x))))


def darts_sep_conv_cost(c_in: int, c_out: int, kernel: int, height: int, width: int, stride: int = 1,
                        affine: bool = True) -> Cost:
    """Analytic cost of :class:`DartsSepConv`."""
    h_out, w_out = conv_out_size(height, kernel, stride), conv_out_size(width, kernel, stride)
    return (conv_cost(c_in, c_in, kernel, height, width, stride, groups=c_in)
            + conv_cost(c_in, c_in, 1, h_out, w_out) + darts_bn_cost(c_in, affine)
            + conv_cost(c_in, c_in, kernel, h_out, w_out, groups=c_in)
            + conv_cost(c_in, c_out, 1, h_out, w_out) + darts_bn_cost(c_out, affine))


class DilConv(HybridBlock):
    """DARTS' ``dil_conv_kxk``: ReLU, depthwise ``k x k`` with dilation 2, pointwise, BN.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel, stride : int
        Depthwise kernel (odd; pad ``2·dilation·(kernel // 2)``) and stride.
    affine, bn_eps, bn_momentum
        BatchNorm settings (:class:`DartsBN`).
    backend : {"onednn", "reference"}
        Form of the depthwise convolution.
    dilation : int
        Multiplies the op's own dilation 2 (output stride 16).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE, dilation: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        with self.name_scope():
            self.dw = DepthwiseConv(c_in, kernel, stride, self.backend, dilation=2 * dilation, prefix="dw_")
            self.pw = nn.Conv2D(c_out, 1, use_bias=False, in_channels=c_in, prefix="pw_")
            self.bn = DartsBN(c_out, affine, bn_eps, bn_momentum, prefix="bn_")

    def hybrid_forward(self, F, x):
        return self.bn(self.pw(self.dw(F.relu(x))))


def dil_conv_cost(c_in: int, c_out: int, kernel: int, height: int, width: int, stride: int = 1,
                  affine: bool = True) -> Cost:
    """Analytic cost of :class:`DilConv`."""
    h_out, w_out = conv_out_size(height, kernel, stride), conv_out_size(width, kernel, stride)
    return (conv_cost(c_in, c_in, kernel, height, width, stride, groups=c_in, dilation=2)
            + conv_cost(c_in, c_out, 1, h_out, w_out) + darts_bn_cost(c_out, affine))


class ReLUConvBN(HybridBlock):
    """ReLU, ``k x k`` conv (pad ``dilation·(k // 2)``, no bias), BN: ``conv_1x1``, ``conv_3x3``
    and the cells' ``1 x 1`` preprocessing.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel, stride : int
        Conv kernel (odd) and stride.
    affine, bn_eps, bn_momentum
        BatchNorm settings (:class:`DartsBN`).
    backend : {"onednn", "reference"}
        Accepted for the uniform constructor; both forms compute the same graph.
    dilation : int
        Dilation of the conv (output stride 16).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE, dilation: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        with self.name_scope():
            self.conv = nn.Conv2D(c_out, kernel, strides=stride, padding=dilation * (kernel // 2),
                                  dilation=dilation, use_bias=False, in_channels=c_in, prefix="conv_")
            self.bn = DartsBN(c_out, affine, bn_eps, bn_momentum, prefix="bn_")

    def hybrid_forward(self, F, x):
        return self.bn(self.conv(F.relu(x)))


def relu_conv_bn_cost(c_in: int, c_out: int, kernel: int, height: int, width: int, stride: int = 1,
                      affine: bool = True) -> Cost:
    """Analytic cost of :class:`ReLUConvBN`."""
    return conv_cost(c_in, c_out, kernel, height, width, stride) + darts_bn_cost(c_out, affine)


class AsymConv(HybridBlock):
    """NASP's ``conv_kx1_1xk``: ReLU, ``1 x k`` conv to C_out (stride along the width), ``k x 1``
    conv C_out -> C_out (stride along the height), BN; no bias, "same" padding.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel, stride : int
        Length of the two kernels (odd) and the stride.
    affine, bn_eps, bn_momentum
        BatchNorm settings (:class:`DartsBN`).
    backend : {"onednn", "reference"}
        Accepted for the uniform constructor; both forms compute the same graph.
    dilation : int
        Dilation along each kernel's long axis (output stride 16).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE, dilation: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        pad = dilation * (kernel // 2)
        with self.name_scope():
            self.conv_1xk = nn.Conv2D(c_out, (1, kernel), strides=(1, stride), padding=(0, pad),
                                      dilation=(1, dilation), use_bias=False, in_channels=c_in, prefix="conv1xk_")
            self.conv_kx1 = nn.Conv2D(c_out, (kernel, 1), strides=(stride, 1), padding=(pad, 0),
                                      dilation=(dilation, 1), use_bias=False, in_channels=c_out, prefix="convkx1_")
            self.bn = DartsBN(c_out, affine, bn_eps, bn_momentum, prefix="bn_")

    def hybrid_forward(self, F, x):
        return self.bn(self.conv_kx1(self.conv_1xk(F.relu(x))))


def asym_conv_cost(c_in: int, c_out: int, kernel: int, height: int, width: int, stride: int = 1,
                   affine: bool = True) -> Cost:
    """Analytic cost of :class:`AsymConv`."""
    h_out, w_out = conv_out_size(height, kernel, stride), conv_out_size(width, kernel, stride)
    w_1, w_2 = kernel * c_in * c_out, kernel * c_out * c_out
    first = Cost(w_1, w_1 * height * w_out, c_in * height * width + c_out * height * w_out + w_1)
    second = Cost(w_2, w_2 * h_out * w_out, c_out * height * w_out + c_out * h_out * w_out + w_2)
    return first + second + darts_bn_cost(c_out, affine)


# ----------------------------------------------------------------------------- the table's specs

Builder = Callable[..., HybridBlock]
Coster = Callable[..., Cost]


def _skip_stride(stride: int) -> int:
    if stride not in (1, 2):
        raise ValueError(f"{SKIP} has stride 1 (identity) or 2 (FactorizedReduce), got {stride}")
    return stride


def _forms(name: str) -> Tuple[Builder, Coster, bool]:
    """``(builder, coster, changes_width)`` of the op ``name`` in the op table's conventions."""
    if name == NONE:
        return (lambda ci, co, s, a, eps, mom, backend, d, **kw: Zero(s, backend, **kw),
                lambda ci, co, h, w, s, a: Cost.zero(), False)
    if name == SKIP:
        return (lambda ci, co, s, a, eps, mom, backend, d, **kw: (
                    Identity(backend, **kw) if _skip_stride(s) == 1 else FactorizedReduce(ci, co, a, eps, mom, backend, **kw)),
                lambda ci, co, h, w, s, a: (
                    Cost.zero() if _skip_stride(s) == 1 else factorized_reduce_cost(ci, co, h, w, a)), False)
    kind, _, size = name.rpartition("_")
    kernel = int(size.partition("x")[0])
    if kind in ("max_pool", "avg_pool"):
        pool_type = kind[:3]
        return (lambda ci, co, s, a, eps, mom, backend, d, **kw: Pool2D(pool_type, ci, kernel, s, backend, **kw),
                lambda ci, co, h, w, s, a: pool_cost(ci, kernel, h, w, s), False)
    if kind == "sep_conv":
        return (lambda ci, co, s, a, eps, mom, backend, d, **kw: DartsSepConv(ci, co, kernel, s, a, eps, mom, backend,
                                                                              d, **kw),
                lambda ci, co, h, w, s, a: darts_sep_conv_cost(ci, co, kernel, h, w, s, a), True)
    if kind == "dil_conv":
        return (lambda ci, co, s, a, eps, mom, backend, d, **kw: DilConv(ci, co, kernel, s, a, eps, mom, backend,
                                                                         d, **kw),
                lambda ci, co, h, w, s, a: dil_conv_cost(ci, co, kernel, h, w, s, a), True)
    if kind == "conv":
        return (lambda ci, co, s, a, eps, mom, backend, d, **kw: ReLUConvBN(ci, co, kernel, s, a, eps, mom, backend,
                                                                            d, **kw),
                lambda ci, co, h, w, s, a: relu_conv_bn_cost(ci, co, kernel, h, w, s, a), True)
    # conv_3x1_1x3, conv_7x1_1x7: the kernel is the first size's height
    kernel = int(name.split("_")[1].partition("x")[0])
    return (lambda ci, co, s, a, eps, mom, backend, d, **kw: AsymConv(ci, co, kernel, s, a, eps, mom, backend,
                                                                      d, **kw),
            lambda ci, co, h, w, s, a: asym_conv_cost(ci, co, kernel, h, w, s, a), True)


T = TypeVar("T")


def darts_specs(make_spec: Callable[..., T]) -> Tuple[T, ...]:
    """The ops of :data:`DARTS_OP_NAMES` as specs, in that order.

    Parameters
    ----------
    make_spec : callable
        :class:`~dso_nas.ops.table.OpSpec` (passed in by the op table, which imports this
        module), called with ``name`` (``PREFIX + bare name``), ``family="darts"``,
        ``builder``, ``coster`` and ``changes_width``.

    Returns
    -------
    tuple
        One spec per op.
    """
    specs = []
    for name in DARTS_OP_NAMES:
        builder, coster, changes_width = _forms(name)
        specs.append(make_spec(name=PREFIX + name, family="darts", builder=builder, coster=coster,
                               changes_width=changes_width, exclusive=True))
    return tuple(specs)
