"""MBConv, the inverted-residual operation of the mobile (ProxylessNAS) space (TPAMI §3.1).

``MBConv(k, e)``: ``1 x 1`` expand conv to ``e·C_in`` -> BN -> ReLU6, ``k x k`` depthwise conv
(carries the stride) -> BN -> ReLU6, ``1 x 1`` project conv to ``C_out`` -> BN (no activation).
Expansion 1 has no expand conv (MobileNetV2's first block). No conv has a bias. The residual
add is the block's, not the op's (:mod:`dso_nas.spaces.mobile`).
"""
from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from .backends import REFERENCE, check_backend
from .cost import Cost, bn_cost, conv_cost, conv_out_size
from .layers import DepthwiseConv

__all__ = ["BNAct", "MBConv", "mbconv_cost", "ACTIVATIONS"]

#: Activations :class:`BNAct` applies after its BatchNorm.
ACTIVATIONS = ("relu6", "none")


class BNAct(nn.BatchNorm):
    """BatchNorm followed by ReLU6 (``clip(x, 0, 6)``) or by nothing.

    Parameters
    ----------
    channels : int
        Channels of the input (axis 1).
    act : {"relu6", "none"}
        The activation after the BatchNorm.
    affine : bool
        Learnable γ (else fixed to 1, as while searching).
    bn_eps, bn_momentum : float
        BatchNorm ε and moving-average momentum.
    """

    def __init__(self, channels: int, act: str = "relu6", affine: bool = True, bn_eps: float = 2e-5,
                 bn_momentum: float = 0.9, **kwargs):
        super().__init__(axis=1, momentum=bn_momentum, epsilon=bn_eps, center=True, scale=affine,
                         in_channels=channels, **kwargs)
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")
        self.act = act

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        y = super().hybrid_forward(F, x, gamma, beta, running_mean, running_var)
        return F.clip(y, 0.0, 6.0) if self.act == "relu6" else y


class MBConv(HybridBlock):
    """Inverted residual body: expand -> depthwise -> project (see the module docstring).

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel : int
        Depthwise kernel (odd); padding ``kernel // 2``.
    expansion : int
        Hidden width ``expansion · c_in``; 1 drops the expand conv.
    stride : int
        Stride of the depthwise convolution.
    affine, bn_eps, bn_momentum
        BatchNorm settings.
    backend : {"onednn", "reference"}
        Form of the depthwise convolution (:mod:`dso_nas.ops.backends`).
    dilation : int
        Dilation of the depthwise convolution ("same" padding: no cost change).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int = 1,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        self.c_in, self.c_out, self.kernel, self.expansion, self.stride = c_in, c_out, kernel, expansion, stride
        mid = c_in * expansion
        with self.name_scope():
            self.expand = None
            if expansion != 1:
                self.expand = nn.Conv2D(mid, 1, use_bias=False, in_channels=c_in, prefix="expand_")
                self.expand_bn = BNAct(mid, "relu6", affine, bn_eps, bn_momentum, prefix="expand_bn_")
            self.depthwise = DepthwiseConv(mid, kernel, stride, self.backend, dilation=dilation, prefix="dw_")
            self.depthwise_bn = BNAct(mid, "relu6", affine, bn_eps, bn_momentum, prefix="dw_bn_")
            self.project = nn.Conv2D(c_out, 1, use_bias=False, in_channels=mid, prefix="project_")
            self.project_bn = BNAct(c_out, "none", affine, bn_eps, bn_momentum, prefix="project_bn_")

    def hybrid_forward(self, F, x):
        if self.expand is not None:
            x = self.expand_bn(self.expand(x))
        x = self.depthwise_bn(self.depthwise(x))
        return self.project_bn(self.project(x))


def mbconv_cost(c_in: int, c_out: int, kernel: int, expansion: int, height: int, width: int,
                stride: int = 1, affine: bool = True) -> Cost:
    """Analytic cost of :class:`MBConv` on a ``c_in x height x width`` input."""
    mid = c_in * expansion
    cost = Cost.zero()
    if expansion != 1:
        cost = cost + conv_cost(c_in, mid, 1, height, width) + bn_cost(mid, affine=affine)
    h_out, w_out = conv_out_size(height, kernel, stride), conv_out_size(width, kernel, stride)
    return (cost + conv_cost(mid, mid, kernel, height, width, stride, groups=mid) + bn_cost(mid, affine=affine)
            + conv_cost(mid, c_out, 1, h_out, w_out) + bn_cost(c_out, affine=affine))
