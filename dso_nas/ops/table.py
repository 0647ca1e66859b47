"""The op table: every candidate operation by name, with a uniform constructor and cost.

One registry, :data:`OPS`, maps an operation name to an :class:`OpSpec`; the supernet and
the derived network of every space build their operations from it, so the two can never
disagree about what ``sep_conv_3x3`` is. A new operation is one spec plus one
``OPS.register`` line; ``model.ops`` choices, the architecture-file check and the
registry-driven tests (build, hybridize, forward+backward, analytic cost = graph cost)
pick it up.

Operations of the dense space (the authors' release):

* ``sep_conv_kxk``: depthwise ``k x k`` conv (groups = C_in, pad ``k // 2``, no bias, carries
  the stride) -> pointwise ``1 x 1`` conv to C_out (no bias) -> BN -> ReLU. One
  depthwise/pointwise pair, no leading ReLU (TPAMI §3.1: "conv-batchnorm-ReLU").
* ``avg_pool_3x3`` / ``max_pool_3x3``: ``3 x 3`` pooling (pad 1; average pooling excludes the
  padding from the count) -> BN -> ReLU; C_in = C_out.

Operations of the mobile space (ProxylessNAS, :mod:`dso_nas.ops.mbconv`):

* ``mbconv_kxk_eE``: MBConv with depthwise kernel ``k`` in 3, 5, 7 and expansion ``E`` in 3, 6;
  ``mbconv_3x3_e1`` (no expand conv) is the fixed first block of the mobile macro.

Operations of the DARTS cell space and NASP's larger one (:mod:`dso_nas.ops.darts`), keyed
``darts_`` + DARTS' name, family ``"darts"``:

* ``darts_none``, ``darts_skip_connect`` (identity; FactorizedReduce at stride 2);
* ``darts_avg_pool_3x3``, ``darts_max_pool_kxk`` (k = 3, 5, 7): bare pooling, no BN;
* ``darts_sep_conv_kxk`` (k = 3, 5, 7): (ReLU, depthwise, pointwise, BN) twice;
* ``darts_dil_conv_kxk`` (k = 3, 5): ReLU, depthwise with dilation 2, pointwise, BN;
* ``darts_conv_1x1``, ``darts_conv_3x3``, ``darts_conv_3x1_1x3``, ``darts_conv_7x1_1x7``: ReLU,
  conv(s), BN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from mxnet.gluon import HybridBlock, nn

from ..errors import ConfigError
from ..registry import Registry
from .backends import REFERENCE, check_backend
from .cost import Cost, bn_cost, conv_cost, conv_out_size, pool_cost
from .darts import PREFIX, darts_specs
from .layers import BNReLU, DepthwiseConv, Pool2D
from .mbconv import MBConv, mbconv_cost

__all__ = ["OpSpec", "OPS", "SepConv", "PoolBNReLU", "sep_conv_cost", "pool_bn_relu_cost",
           "build_op", "op_cost", "check_ops", "darts_op"]


class SepConv(HybridBlock):
    """Depthwise ``kernel x kernel`` conv -> pointwise ``1 x 1`` conv -> BN -> ReLU.

    Parameters
    ----------
    c_in : int
        Input channels (the depthwise convolution's groups).
    kernel : int
        Depthwise kernel size (odd); padding ``kernel // 2``.
    stride : int
        Stride of the depthwise convolution.
    affine, bn_eps, bn_momentum
        BatchNorm settings (see :class:`~dso_nas.ops.layers.BNReLU`).
    backend : {"onednn", "reference"}
        Form of the depthwise convolution and the BN-ReLU (:mod:`dso_nas.ops.backends`).
    c_out : int, optional
        Output channels (default ``c_in``).
    dilation : int
        Dilation of the depthwise convolution (output stride 16: the stages after a stride-1
        reduction); "same" padding keeps the cost unchanged.
    """

    def __init__(self, c_in: int, kernel: int, stride: int = 1, affine: bool = True,
                 bn_eps: float = 2e-5, bn_momentum: float = 0.9, backend: str = REFERENCE,
                 c_out: Optional[int] = None, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        c_out = c_in if c_out is None else c_out
        self.backend = check_backend(backend)
        with self.name_scope():
            self.depthwise = DepthwiseConv(c_in, kernel, stride, self.backend, dilation=dilation)
            self.pointwise = nn.Conv2D(c_out, 1, use_bias=False, in_channels=c_in)
            self.bn = BNReLU(c_out, affine, bn_eps, bn_momentum, self.backend)

    def hybrid_forward(self, F, x):
        return self.bn(self.pointwise(self.depthwise(x)))


def sep_conv_cost(c_in: int, kernel: int, height: int, width: int, stride: int = 1,
                  affine: bool = True, c_out: Optional[int] = None) -> Cost:
    """Analytic cost of :class:`SepConv`."""
    c_out = c_in if c_out is None else c_out
    h_out = conv_out_size(height, kernel, stride)
    w_out = conv_out_size(width, kernel, stride)
    return (conv_cost(c_in, c_in, kernel, height, width, stride, groups=c_in)
            + conv_cost(c_in, c_out, 1, h_out, w_out)
            + bn_cost(c_out, affine=affine))


class PoolBNReLU(HybridBlock):
    """``k x k`` max or average pooling (pad ``k // 2``) -> BN -> ReLU.

    Parameters
    ----------
    pool_type : {"max", "avg"}
        Average pooling does not count the padding.
    channels : int
        Input and output channels (for the BN).
    kernel, stride
        Pooling window and stride; padding ``kernel // 2``.
    affine, bn_eps, bn_momentum
        BatchNorm settings.
    backend : {"onednn", "reference"}
        Form of the pooling (:func:`~dso_nas.ops.layers.pool2d`) and of the BN-ReLU.
    """

    def __init__(self, pool_type: str, channels: int, kernel: int = 3, stride: int = 1,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        with self.name_scope():
            self.pool = Pool2D(pool_type, channels, kernel, stride, self.backend)
            self.bn = BNReLU(channels, affine, bn_eps, bn_momentum, self.backend)

    def hybrid_forward(self, F, x):
        return self.bn(self.pool(x))


def pool_bn_relu_cost(channels: int, kernel: int, height: int, width: int, stride: int = 1,
                      affine: bool = True) -> Cost:
    """Analytic cost of :class:`PoolBNReLU`."""
    return pool_cost(channels, kernel, height, width, stride) + bn_cost(channels, affine=affine)


@dataclass(frozen=True)
class OpSpec:
    """One candidate operation: how to build it and what it costs.

    Attributes
    ----------
    name : str
        The op's name in configs and architecture files.
    family : str
        What kind of op it is (``"sep_conv"``, ``"pool"``, ``"mbconv"``...): drawings colour by it.
    builder : callable
        ``(c_in, c_out, stride, affine, bn_eps, bn_momentum, backend, dilation, **kwargs) -> HybridBlock``;
        ``dilation`` dilates the op's spatial convolutions (pooling is never dilated, as in
        DeepLabv3's dilated ResNets) and, with "same" padding, changes no cost.
    coster : callable
        ``(c_in, c_out, height, width, stride, affine) -> Cost`` for a ``c_in x height x width``
        input.
    expansion : float
        Width expansion inside the op (1 for the dense space's ops; MBConv's ratio).
    changes_width : bool
        Whether ``c_out`` may differ from ``c_in``.
    exclusive : bool
        Built only by the space whose ``op_family`` is this op's family (DARTS' ops, whose
        forms are those of its cells); a space of any family does not search it.
    """

    name: str
    family: str
    builder: Callable[..., HybridBlock]
    coster: Callable[..., Cost]
    expansion: float = 1.0
    changes_width: bool = True
    exclusive: bool = False

    def _c_out(self, c_in: int, c_out: Optional[int]) -> int:
        c_out = c_in if c_out is None else int(c_out)
        if c_out != c_in and not self.changes_width:
            raise ValueError(f"operation {self.name!r} keeps the width: c_out ({c_out}) must equal c_in ({c_in})")
        return c_out

    def build(self, c_in: int, stride: int = 1, affine: bool = True, bn_eps: float = 2e-5,
              bn_momentum: float = 0.9, *, c_out: Optional[int] = None, backend: str = REFERENCE,
              dilation: int = 1, **kwargs) -> HybridBlock:
        """A fresh block of this op (``kwargs`` go to its constructor, e.g. ``prefix``)."""
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        return self.builder(c_in, self._c_out(c_in, c_out), stride, affine, bn_eps, bn_momentum,
                            check_backend(backend), dilation, **kwargs)

    def cost(self, c_in: int, height: int, width: int, stride: int = 1, affine: bool = True, *,
             c_out: Optional[int] = None) -> Cost:
        """Analytic cost on a ``c_in x height x width`` input."""
        return self.coster(c_in, self._c_out(c_in, c_out), height, width, stride, affine)


def _sep_conv(kernel: int) -> OpSpec:
    return OpSpec(
        name=f"sep_conv_{kernel}x{kernel}", family="sep_conv",
        builder=lambda ci, co, s, a, eps, mom, backend, d, **kw: SepConv(ci, kernel, s, a, eps, mom, backend,
                                                                         c_out=co, dilation=d, **kw),
        coster=lambda ci, co, h, w, s, a: sep_conv_cost(ci, kernel, h, w, s, a, c_out=co),
    )


def _pool(pool_type: str) -> OpSpec:
    return OpSpec(
        name=f"{pool_type}_pool_3x3", family=f"{pool_type}_pool", changes_width=False,
        builder=lambda ci, co, s, a, eps, mom, backend, d, **kw: PoolBNReLU(pool_type, ci, 3, s, a, eps, mom,
                                                                            backend, **kw),
        coster=lambda ci, co, h, w, s, a: pool_bn_relu_cost(ci, 3, h, w, s, a),
    )


def _mbconv(kernel: int, expansion: int) -> OpSpec:
    return OpSpec(
        name=f"mbconv_{kernel}x{kernel}_e{expansion}", family="mbconv", expansion=float(expansion),
        builder=lambda ci, co, s, a, eps, mom, backend, d, **kw: MBConv(ci, co, kernel, expansion, s, a, eps, mom,
                                                                        backend, dilation=d, **kw),
        coster=lambda ci, co, h, w, s, a: mbconv_cost(ci, co, kernel, expansion, h, w, s, a),
    )


#: The operation table, in the paper's order (the first four) plus ``sep_conv_7x7`` for the
#: N = 5 ablation (Tables 8-9), then the mobile space's MBConv ops.
OPS: Registry[OpSpec] = Registry("operation", "model.ops")
for _spec in (_sep_conv(3), _sep_conv(5), _pool("avg"), _pool("max"), _sep_conv(7)):
    OPS.register(_spec.name, _spec)
#: The mobile space's six MBConv ops (kernel 3, 5, 7 x expansion 3, 6) and its fixed e=1 block.
for _spec in (*(_mbconv(k, e) for k in (3, 5, 7) for e in (3, 6)), _mbconv(3, 1)):
    OPS.register(_spec.name, _spec)
#: The DARTS cell space's ops and NASP's (:data:`dso_nas.ops.darts.DARTS_OP_NAMES`), as ``darts_<name>``.
for _spec in darts_specs(OpSpec):
    OPS.register(_spec.name, _spec)


def build_op(name: str, c_in: int, stride: int = 1, affine: bool = True, bn_eps: float = 2e-5,
             bn_momentum: float = 0.9, **kwargs) -> HybridBlock:
    """Build operation ``name`` (see :data:`OPS`); raises ``ConfigError`` on an unknown name."""
    return OPS.get(name).build(c_in, stride, affine, bn_eps, bn_momentum, **kwargs)


def op_cost(name: str, c_in: int, height: int, width: int, stride: int = 1, affine: bool = True,
            *, c_out: Optional[int] = None) -> Cost:
    """Analytic cost of operation ``name``; raises ``ConfigError`` on an unknown name."""
    return OPS.get(name).cost(c_in, height, width, stride, affine, c_out=c_out)


def check_ops(names: Iterable[str]) -> None:
    """Raise ``ConfigError`` (the registry's, listing the valid names) if a name is not in :data:`OPS`."""
    for name in names:
        OPS.get(name)


def darts_op(name: str) -> OpSpec:
    """The op table's entry of the DARTS op ``name`` (bare, e.g. ``"sep_conv_3x3"``): ``OPS.get("darts_" + name)``.

    The DARTS ops are the table's ``darts`` family as it stands, so an op a check registers at run
    time (the planted check's decoys) is one too. Raises :class:`~dso_nas.errors.ConfigError` (one
    line, listing the valid names) for an unknown name.
    """
    full = PREFIX + name
    if full not in OPS or OPS.get(full).family != "darts":
        valid = [n[len(PREFIX):] for n in OPS.names() if OPS.get(n).family == "darts"]
        raise ConfigError(f"unknown DARTS operation {name!r}; valid: {', '.join(valid)}")
    return OPS.get(full)
