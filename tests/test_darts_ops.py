"""The DARTS / NASP operations of :mod:`dso_nas.ops.darts`: their forms, checked numerically against
numpy, and their costs, checked by hand and against NASP's per-op parameter counts."""
from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from dso_nas.errors import ConfigError
from tolerance import assert_close_rel, layered_rtol
from dso_nas.ops import BACKENDS, OPS, darts_op
from dso_nas.ops.darts import (DARTS_OP_NAMES, DARTS_V1_OPS, NASP_7_OPS, NASP_12_NORMAL, NASP_12_REDUCE, NONE,
                               PREFIX, SKIP, FactorizedReduce, ReLUConvBN)

EPS = 1e-5


def _np_conv(x, w, stride=(1, 1), pad=(0, 0), dilation=(1, 1), groups=1):
    """A plain numpy 2-D convolution (NCHW, OIHW weights, no bias)."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    h_out = (h + 2 * pad[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (wd + 2 * pad[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, h_out, w_out))
    per_group = o // groups
    for f in range(o):
        g = f // per_group
        for i in range(kh):
            for j in range(kw):
                r, c = i * dilation[0], j * dilation[1]
                patch = xp[:, g * cg:(g + 1) * cg, r:r + stride[0] * (h_out - 1) + 1:stride[0],
                           c:c + stride[1] * (w_out - 1) + 1:stride[1]]
                out[:, f] += np.einsum("nchw,c->nhw", patch, w[f, :, i, j])
    return out


def _np_bn(x, bn):
    """Inference-mode BatchNorm with the block's running statistics, γ and β."""
    shape = (1, -1, 1, 1)
    mean, var = bn.running_mean.data().asnumpy().reshape(shape), bn.running_var.data().asnumpy().reshape(shape)
    gamma, beta = bn.gamma.data().asnumpy().reshape(shape), bn.beta.data().asnumpy().reshape(shape)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def _randomize_bns(block, rng):
    for name, p in block.collect_params().items():
        if name.endswith(("gamma", "running_var")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))
        elif name.endswith(("beta", "running_mean")):
            p.set_data(mx.nd.array(rng.normal(size=p.shape)))


def _w(p):
    return p.data().asnumpy()


def test_the_op_lists_and_their_table_entries():
    assert DARTS_V1_OPS == DARTS_OP_NAMES[:8] == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
        "dil_conv_5x5")
    assert NASP_7_OPS == DARTS_V1_OPS[1:] and NONE == "none" and SKIP == "skip_connect"
    assert set(NASP_12_NORMAL) | set(NASP_12_REDUCE) <= set(DARTS_OP_NAMES) and len(DARTS_OP_NAMES) == 15
    for name in DARTS_OP_NAMES:
        spec = darts_op(name)
        assert spec is OPS.get(PREFIX + name) and spec.name == PREFIX + name and spec.family == "darts"
    assert [n for n in OPS.names() if n.startswith(PREFIX)] == [PREFIX + n for n in DARTS_OP_NAMES]


def test_darts_op_refuses_an_unknown_name_in_one_line():
    with pytest.raises(ConfigError) as err:
        darts_op("sep_conv_9x9")
    message = str(err.value)
    assert "\n" not in message and "'sep_conv_9x9'" in message
    assert message.endswith("valid: " + ", ".join(DARTS_OP_NAMES))
    with pytest.raises(ConfigError):
        darts_op(PREFIX + "sep_conv_3x3")  # bare names only


@pytest.mark.parametrize("backend", BACKENDS)
def test_skip_connect_at_stride_1_is_x_exactly(backend):
    block = darts_op(SKIP).build(4, 1, backend=backend)
    block.initialize()
    block.hybridize()
    x = mx.nd.random.normal(shape=(2, 4, 7, 7))
    assert np.array_equal(block(x).asnumpy(), x.asnumpy())
    assert darts_op(SKIP).cost(4, 7, 7, 1).as_dict() == {"params": 0, "flops": 0, "mac": 0}


@pytest.mark.parametrize("stride, side, out", [(1, 7, 7), (2, 7, 4), (2, 8, 4)])
def test_none_is_zeros_of_the_strided_shape(stride, side, out):
    block = darts_op(NONE).build(4, stride)
    block.initialize()
    block.hybridize()
    y = block(mx.nd.random.normal(shape=(2, 4, side, side))).asnumpy()
    assert y.shape == (2, 4, out, out) and not y.any()
    assert darts_op(NONE).cost(4, side, side, stride).as_dict() == {"params": 0, "flops": 0, "mac": 0}


@pytest.mark.parametrize("side", [7, 8])
def test_factorized_reduce_halves_read_x_and_x_shifted_by_one_pixel(side):
    """Conv weights that pick channels: the first half is ReLU(x)[::2, ::2], the second
    ReLU(x) shifted up-left by one pixel (zero past the border), both ceil(side / 2) wide."""
    c_in, c_out = 4, 5  # c_out // 2 = 2 filters on x, 3 on the shifted x
    block = FactorizedReduce(c_in, c_out, affine=False, bn_eps=EPS)
    block.initialize()
    pick_1, pick_2 = np.zeros((2, c_in, 1, 1)), np.zeros((3, c_in, 1, 1))
    pick_1[[0, 1], [0, 1]] = 1
    pick_2[[0, 1, 2], [1, 2, 3]] = 1
    block.conv_1.weight.set_data(mx.nd.array(pick_1))
    block.conv_2.weight.set_data(mx.nd.array(pick_2))
    x = np.random.RandomState(0).normal(size=(2, c_in, side, side))
    y = block(mx.nd.array(x)).asnumpy() * np.sqrt(1 + EPS)  # BN: running mean 0, variance 1, no γ/β
    half = (side + 1) // 2
    assert y.shape == (2, c_out, half, half)
    relu = np.maximum(x, 0)
    shifted = np.zeros_like(relu)
    shifted[:, :, :-1, :-1] = relu[:, :, 1:, 1:]
    rtol = layered_rtol(3, c_in)  # the float32 input, the 1 x 1 sums of c_in terms, BN's scaling
    assert_close_rel(y[:, :2], relu[:, [0, 1], ::2, ::2], rtol, "first half", floor=1.0)
    assert_close_rel(y[:, 2:], shifted[:, [1, 2, 3], ::2, ::2], rtol, "shifted half", floor=1.0)
    if side % 2:  # the last row and column of the second half read the zero padding
        assert not y[:, 2:, -1].any() and not y[:, 2:, :, -1].any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride", [1, 2])
def test_sep_conv_is_the_double_depthwise_pointwise_bn(backend, stride):
    rng = np.random.RandomState(1)
    block = darts_op("sep_conv_5x5").build(3, stride, c_out=4, backend=backend, bn_eps=EPS)
    block.initialize(mx.init.Normal(0.5))
    _randomize_bns(block, rng)
    block.hybridize()
    x = rng.normal(size=(2, 3, 9, 9))
    y = block(mx.nd.array(x)).asnumpy()
    h = _np_conv(np.maximum(x, 0), _w(block.dw_1.weight), (stride, stride), (2, 2), groups=3)
    h = _np_bn(_np_conv(h, _w(block.pw_1.weight)), block.bn_1)
    h = _np_conv(np.maximum(h, 0), _w(block.dw_2.weight), (1, 1), (2, 2), groups=3)
    h = _np_bn(_np_conv(h, _w(block.pw_2.weight)), block.bn_2)
    assert_close_rel(y, h, layered_rtol(6, 25), "sep_conv_5x5", floor=1.0)  # 4 convs (5 x 5 windows), 2 BN


def test_dil_conv_and_the_asymmetric_conv_match_numpy():
    rng = np.random.RandomState(2)
    x = rng.normal(size=(2, 3, 9, 9))
    dil = darts_op("dil_conv_3x3").build(3, 2, c_out=4, bn_eps=EPS)
    dil.initialize(mx.init.Normal(0.5))
    _randomize_bns(dil, rng)
    h = _np_conv(np.maximum(x, 0), _w(dil.dw.weight), (2, 2), (2, 2), (2, 2), groups=3)
    assert_close_rel(dil(mx.nd.array(x)).asnumpy(), _np_bn(_np_conv(h, _w(dil.pw.weight)), dil.bn),
                     layered_rtol(3, 9), "dil_conv_3x3", floor=1.0)  # depthwise 3 x 3, pointwise, BN
    asym = darts_op("conv_3x1_1x3").build(3, 2, c_out=4, bn_eps=EPS)
    asym.initialize(mx.init.Normal(0.5))
    _randomize_bns(asym, rng)
    assert asym.conv_1xk.weight.shape == (4, 3, 1, 3) and asym.conv_kx1.weight.shape == (4, 4, 3, 1)
    h = _np_conv(np.maximum(x, 0), _w(asym.conv_1xk.weight), (1, 2), (0, 1))
    h = _np_conv(h, _w(asym.conv_kx1.weight), (2, 1), (1, 0))
    assert_close_rel(asym(mx.nd.array(x)).asnumpy(), _np_bn(h, asym.bn), layered_rtol(3, 3 * 4), "conv_3x1_1x3",
                     floor=1.0)  # two convs of at most 3 x 4 terms, BN


def test_pools_are_bare_and_average_excludes_the_padding():
    x = mx.nd.arange(16).reshape((1, 1, 4, 4))
    avg = darts_op("avg_pool_3x3").build(1, 1)
    assert not list(avg.collect_params().keys())  # no BN
    assert avg(x)[0, 0, 0, 0].asscalar() == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert darts_op("max_pool_7x7").build(1, 2)(x).asnumpy().ravel().tolist() == [15, 15, 15, 15]


@pytest.mark.parametrize("k", [3, 5, 7])
def test_sep_conv_params_are_the_closed_form(k):
    c = 8
    for affine, bn in ((True, 2 * 2 * c), (False, 0)):
        block = darts_op(f"sep_conv_{k}x{k}").build(c, 1, affine)
        block.initialize()
        trainable = sum(int(np.prod(p.shape)) for p in block.collect_params().values() if p.grad_req != "null")
        closed_form = 2 * (k * k * c + c * c) + bn
        assert trainable == darts_op(f"sep_conv_{k}x{k}").cost(c, 8, 8, 1, affine).params == closed_form


def test_mac_by_hand():
    # conv_3x3, 4 -> 6 channels, 8x8 at stride 2: reads 4·8·8, writes 6·4·4, reads 3·3·4·6 weights
    assert darts_op("conv_3x3").cost(4, 8, 8, 2, c_out=6).mac == 4 * 64 + 6 * 16 + 9 * 4 * 6
    # skip_connect at stride 2 on 4x7x7: two 1x1 convs 4 -> 2, each reads the 7x7 map and writes 4x4
    fr = darts_op(SKIP).cost(4, 7, 7, 2)
    assert (fr.params, fr.flops, fr.mac) == (2 * 8 + 2 * 4, 2 * 8 * 16, 2 * (4 * 49 + 2 * 16 + 8))
    # sep_conv_3x3 on 4x8x8: depthwise (256 in, 256 out, 36 w) and pointwise (256, 256, 16), twice
    assert darts_op("sep_conv_3x3").cost(4, 8, 8).mac == 2 * ((256 + 256 + 36) + (256 + 256 + 16))
    # max_pool_5x5 at stride 2 on 4x7x7: reads 4·49, writes 4·16
    assert darts_op("max_pool_5x5").cost(4, 7, 7, 2).mac == 4 * 49 + 4 * 16


def test_nasp_per_op_parameter_counts():
    """NASP's per-op parameter counts (864, 2016, 1464, 1296) are conv weights only, at C = 12.

    They are the counts with no BN parameter: DARTS' and NASP's search-time ``affine=False``, whose
    BatchNorm learns neither γ nor β. ``conv_3x1_1x3``: 2·3·12² = 864; ``conv_7x1_1x7``: 2·7·12² = 2016;
    ``sep_conv_7x7``: 2·(7²·12 + 12²) = 1464; ``conv_3x3``: 3²·12² = 1296. At C = 16 no convention gives
    them (1536 / 1568, 3584 / 3616, 2080 / 2144, 2304 / 2336 without / with BN); with BN (``affine=True``)
    each count at C = 12 adds 2·12 per BN (one BN in each op but ``sep_conv``, which has two).
    """
    nasp = {"conv_3x1_1x3": 864, "conv_7x1_1x7": 2016, "sep_conv_7x7": 1464, "conv_3x3": 1296}
    for name, count in nasp.items():
        assert darts_op(name).cost(12, 8, 8, 1, affine=False).params == count, name
        bns = 2 if name.startswith("sep_conv") else 1
        assert darts_op(name).cost(12, 8, 8, 1, affine=True).params == count + bns * 2 * 12, name


def test_factorized_reduce_and_relu_conv_bn_change_width_and_cost():
    block = FactorizedReduce(6, 5)
    block.initialize()
    assert block(mx.nd.ones((1, 6, 9, 9))).shape == (1, 5, 5, 5)
    pre = ReLUConvBN(6, 4, 1, 1, affine=False)
    pre.initialize()
    assert pre(mx.nd.ones((1, 6, 9, 9))).shape == (1, 4, 9, 9)
    assert sum(int(np.prod(p.shape)) for p in pre.collect_params().values() if p.grad_req != "null") == 24


@pytest.mark.parametrize("name", [n for n in DARTS_OP_NAMES if n not in (NONE, SKIP)])
def test_dilation_keeps_the_shape(name):
    spec = darts_op(name)
    block = spec.build(4, 1, dilation=2, c_out=6 if spec.changes_width else 4)
    block.initialize()
    assert block(mx.nd.ones((1, 4, 9, 9))).shape[2:] == (9, 9)
