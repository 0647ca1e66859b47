"""The oneDNN op forms compute what the reference ones do: values and gradients.

Poolings against ``F.Pooling``; the column-split depthwise convolution against one
``F.Convolution``; the fused BN-ReLU against ``BatchNorm`` then ``relu``.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import HybridBlock

from dso_nas.errors import ConfigError
from tolerance import assert_close_rel, assert_within_rounding, layered_rtol, net_rtol
from dso_nas.ops import (BACKENDS, OPS, BNReLU, DepthwiseConv, PoolBNReLU, SepConv, backend_for_contexts,
                         build_op, graph_cost, op_cost, pool2d)

CHANNELS = 3


class _Pool(HybridBlock):
    """Just the pooling of :func:`pool2d`, so the test sees it without BN."""

    def __init__(self, pool_type, stride, impl, kernel=3):
        super().__init__()
        self.args = (pool_type, CHANNELS, kernel, stride, impl)

    def hybrid_forward(self, F, x):
        return pool2d(F, x, *self.args)


def _distinct_input(shape, seed):
    """Values that are pairwise distinct (no ties in any window), in random order."""
    rng = np.random.RandomState(seed)
    values = rng.permutation(np.prod(shape)).astype(np.float32)
    return mx.nd.array((values / values.size - 0.5).reshape(shape) * 4.0)


def _value_and_grad(block, x, head):
    x = x.copy()
    x.attach_grad()
    with autograd.record():
        y = block(x)
        loss = (y * head).sum()
    loss.backward()
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("size", [(7, 7), (8, 8), (6, 9)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_fast_pool_equals_pooling(pool_type, stride, size, hybridize):
    shape = (2, CHANNELS) + size
    x = _distinct_input(shape, seed=stride * 100 + size[0] * 10 + size[1])
    results = []
    for impl in ("reference", "onednn"):
        block = _Pool(pool_type, stride, impl)
        if hybridize:
            block.hybridize(static_alloc=True)
        out_shape = block(x).shape
        head = mx.nd.array(np.random.RandomState(7).normal(size=out_shape))
        results.append(_value_and_grad(block, x, head))
    (y_ref, g_ref), (y_fast, g_fast) = results
    side = [(n - 1) // stride + 1 for n in size]
    assert y_fast.shape == y_ref.shape == (2, CHANNELS, side[0], side[1])
    # a window sums at most 9 terms; its scaling by 1/count adds one more rounding (+ 1); Σ|term|
    # is the reference pooling of |x|, back-propagated from |head|
    y_mag, g_mag = _value_and_grad(_Pool(pool_type, stride, "reference"), x.abs(), head.abs())
    assert_within_rounding(y_fast, y_ref, 9 + 1, y_mag, "output")
    assert_within_rounding(g_fast, g_ref, 9 + 1, g_mag, "input gradient")
    if pool_type == "max":  # a max pooling copies values: exact, and the same winners
        np.testing.assert_array_equal(y_fast, y_ref)
        np.testing.assert_array_equal(g_fast != 0, g_ref != 0)


def test_avg_fast_excludes_padding_by_hand():
    x = mx.nd.array(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    block = _Pool("avg", 1, "onednn")
    block.args = ("avg", 1, 3, 1, "onednn")
    out = block(x).asnumpy()[0, 0]
    assert out[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4.0)
    assert out[0, 1] == pytest.approx((0 + 1 + 2 + 4 + 5 + 6) / 6.0)
    assert out[1, 1] == pytest.approx(5.0)


@pytest.mark.parametrize("stride", [1, 2])
def test_max_fast_ties_go_to_the_first_position_like_pooling(stride):
    # an all-equal map (e.g. all zero after a ReLU): every window is a tie; both send the
    # gradient of a window to its first position in row-major order
    x = mx.nd.zeros((1, CHANNELS, 5, 5))
    side = (5 - 1) // stride + 1
    out_shape = (1, CHANNELS, side, side)
    head = mx.nd.array(np.arange(np.prod(out_shape), dtype=np.float32).reshape(out_shape) + 1)
    _, g_fast = _value_and_grad(_Pool("max", stride, "onednn"), x, head)
    _, g_ref = _value_and_grad(_Pool("max", stride, "reference"), x, head)
    np.testing.assert_array_equal(g_fast, g_ref)
    assert g_fast.sum() == head.sum().asscalar()


@pytest.mark.parametrize("name", list(OPS))
def test_op_impls_agree_and_cost_is_the_math(name):
    x = _distinct_input((2, 4, 6, 6), seed=3)
    outs = []
    for impl in BACKENDS:
        block = build_op(name, 4, 1, affine=False, prefix="op_", backend=impl)
        assert block.backend == impl
        mx.random.seed(7)
        block.initialize(mx.init.Xavier())
        block.hybridize(static_alloc=True)
        outs.append(_value_and_grad(block, x, mx.nd.ones((2, 4, 6, 6))))
        if impl == "reference":
            measured = graph_cost(block, (2, 4, 6, 6))
            analytic = op_cost(name, 4, 6, 6, 1, affine=False)
            assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
        else:  # the cost model is checked on the reference form only
            with pytest.raises(ValueError, match="reference form"):
                graph_cost(block, (2, 4, 6, 6))
    rtol = net_rtol(block, (2, 4, 6, 6))  # the same sums in other orders (tests/tolerance.py)
    assert_close_rel(outs[1][0], outs[0][0], rtol, f"{name} output")
    # the head is all ones and BN's backward subtracts the head's mean: the input gradient of an op
    # ending in BN cancels to rounding noise of terms of order one, so it is compared at that order
    assert_close_rel(outs[1][1], outs[0][1], rtol, f"{name} input gradient", floor=1.0)


def test_fast_pool_adds_no_parameters():
    names = []
    for impl in BACKENDS:
        block = PoolBNReLU("avg", 4, backend=impl, prefix="p_")
        names.append(sorted(block.collect_params().keys()))
    assert names[0] == names[1]


def test_backend_is_explicit_and_checked():
    assert SepConv(4, 5).depthwise.backend == "reference"  # a plain default, no process-wide switch
    assert SepConv(4, 5, backend="onednn").depthwise.backend == "onednn"
    assert SepConv(4, 5).depthwise.backend == "reference"
    with pytest.raises(ConfigError, match="unknown op backend"):
        PoolBNReLU("max", 4, backend="mkl")


# ----------------------------------------------------------------------------- depthwise


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [5, 7])
def test_depthwise_split_equals_one_convolution(kernel, stride, size, hybridize):
    rng = np.random.RandomState(kernel * 10 + stride)
    x = mx.nd.array(rng.normal(size=(2, CHANNELS) + size))
    weight = mx.nd.array(rng.normal(size=(CHANNELS, 1, kernel, kernel)))
    results = []
    for impl in ("reference", "onednn"):
        conv = DepthwiseConv(CHANNELS, kernel, stride, backend=impl, prefix="dw_")
        conv.initialize()
        conv.weight.set_data(weight)
        if hybridize:
            conv.hybridize(static_alloc=True)
        head = mx.nd.array(np.random.RandomState(1).normal(size=conv(x).shape))
        y, g = _value_and_grad(conv, x, head)
        results.append((y, g, conv.weight.grad().asnumpy()))
    ref, fast = results
    assert fast[0].shape == ref[0].shape
    # Σ|term| of every output, input gradient and weight gradient: the reference convolution of
    # |x| by |w|, back-propagated from |head|
    conv = DepthwiseConv(CHANNELS, kernel, stride, backend="reference", prefix="abs_")
    conv.initialize()
    conv.weight.set_data(weight.abs())
    head = mx.nd.array(np.random.RandomState(1).normal(size=ref[0].shape))
    y_mag, g_mag = _value_and_grad(conv, x.abs(), head.abs())
    taps = kernel * 3 * -(-kernel // 3)  # the column split pads the kernel to whole 3-wide columns
    positions = ref[0].shape[0] * ref[0].shape[2] * ref[0].shape[3]  # a weight's gradient sums these
    assert_within_rounding(fast[0], ref[0], taps + 1, y_mag, "output")  # + 1: the product's rounding
    assert_within_rounding(fast[1], ref[1], taps + 1, g_mag, "input gradient")
    assert_within_rounding(fast[2], ref[2], positions + 1, conv.weight.grad().asnumpy(), "weight gradient")


def test_sep_conv_keeps_its_parameters_and_cost():
    names = []
    for impl in BACKENDS:
        block = SepConv(4, 5, 1, affine=False, backend=impl, prefix="sep_")
        names.append(sorted(block.collect_params().keys()))
        block.initialize()
        if impl == "reference":
            measured = graph_cost(block, (2, 4, 6, 6))
            analytic = op_cost("sep_conv_5x5", 4, 6, 6, 1, affine=False)
            assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
        assert block.depthwise.backend == impl
    assert names[0] == names[1]
    assert SepConv(4, 3, backend="onednn").depthwise.weight.shape == (4, 1, 3, 3)


# ----------------------------------------------------------------------------- BN + ReLU


def _bn_relu_run(impl, affine, x, head, train):
    bn = BNReLU(x.shape[1], affine=affine, backend=impl, prefix="bn_")
    bn.initialize()
    rng = np.random.RandomState(5)
    bn.beta.set_data(mx.nd.array(rng.normal(size=x.shape[1])))
    if affine:
        bn.gamma.set_data(mx.nd.array(rng.uniform(0.5, 2.0, size=x.shape[1])))
    bn.running_mean.set_data(mx.nd.array(rng.normal(size=x.shape[1])))
    bn.running_var.set_data(mx.nd.array(rng.uniform(0.5, 2.0, size=x.shape[1])))
    bn.hybridize(static_alloc=True)
    x = x.copy()
    x.attach_grad()
    with autograd.record(train_mode=train):
        y = bn(x)
        loss = (y * head).sum()
    loss.backward()
    grads = [p.grad().asnumpy() for p in (bn.gamma, bn.beta) if p.grad_req != "null"]
    return ([y.asnumpy(), x.grad.asnumpy()] + grads
            + [bn.running_mean.data().asnumpy(), bn.running_var.data().asnumpy()])


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("affine", [False, True])
def test_fused_bn_relu_equals_batchnorm_then_relu(affine, train):
    rng = np.random.RandomState(11)
    x = mx.nd.array(rng.normal(size=(4, 5, 6, 7)))
    head = mx.nd.array(rng.normal(size=(4, 5, 6, 7)))
    ref = _bn_relu_run("reference", affine, x, head, train)
    fast = _bn_relu_run("onednn", affine, x, head, train)
    assert len(fast) == len(ref) == (6 if affine else 5)
    assert (ref[0] == 0).any() and (ref[0] > 0).any()  # the ReLU is active both ways
    if not train:
        # MXNet 1.9's fused operator back-propagates wrongly in inference mode (documented
        # on BNReLU; nothing here does that): compare the output and the statistics only.
        fast, ref = [fast[0]] + fast[-2:], [ref[0]] + ref[-2:]
    # the batch mean and variance sum N·H·W terms, the normalisation and the γ/β gradients sum
    # them again: a sum layer for each (tests/tolerance.py)
    rtol = layered_rtol(3, x.shape[0] * x.shape[2] * x.shape[3])
    for i, (a, b) in enumerate(zip(fast, ref)):
        assert_close_rel(a, b, rtol, f"result {i}", floor=1.0)


def test_bn_relu_parameters_do_not_depend_on_the_implementation():
    names = [sorted(BNReLU(3, backend=impl, prefix="b_").collect_params().keys()) for impl in BACKENDS]
    assert names[0] == names[1] == ["b_beta", "b_gamma", "b_running_mean", "b_running_var"]


def test_backend_for_contexts():
    expected = "onednn" if mx.runtime.Features().is_enabled("MKLDNN") else "reference"
    assert backend_for_contexts([mx.cpu()]) == expected
    assert backend_for_contexts([mx.gpu(0)]) == "reference"
    assert backend_for_contexts([mx.cpu(), mx.gpu(1)]) == "reference"
    assert backend_for_contexts([mx.cpu(0), mx.cpu(1)]) == "reference"


# ----------------------------------------------------------------------------- whole networks


def _net_value_and_grads(impl, derived):
    from dso_nas.spaces.dense.arch import Layout  # noqa: PLC0415
    from dso_nas.spaces.dense.baselines import full_architecture  # noqa: PLC0415
    from dso_nas.spaces.dense.derived import DerivedNet  # noqa: PLC0415
    from dso_nas.spaces.dense.supernet import SuperNet  # noqa: PLC0415

    kwargs = dict(stem="cifar", in_channels=3, stem_channels=8, channels=(8, 16), blocks=(1, 1),
                  levels=2, ops=tuple(OPS)[:4], scope="full", num_classes=10)
    net = SuperNet(prefix="net_", backend=impl, **kwargs)
    if derived:
        layout = Layout(**{k: v for k, v in kwargs.items() if k not in ("scope", "num_classes")})
        net = DerivedNet(full_architecture(layout), num_classes=10, aux_weight=0.4, affine=True,
                         prefix="net_", backend=impl)
    mx.random.seed(1)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.normal(size=(4, 3, 16, 16)))
    label = mx.nd.array(rng.randint(0, 10, size=4))
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        out = net(x)
        logits = out[0] if isinstance(out, (list, tuple)) else out
        loss = sum(loss_fn(o, label) for o in (out if isinstance(out, (list, tuple)) else [out]))
    loss.backward()
    return logits.asnumpy(), {k: p.grad().asnumpy() for k, p in net.collect_params().items()
                              if p.grad_req != "null"}, net_rtol(net, x.shape)


@pytest.mark.parametrize("derived", [False, True], ids=["supernet", "derived_with_aux"])
def test_networks_compute_the_same_in_both_implementations(derived):
    """The two forms sum the same terms in other orders (tests/tolerance.py's first-order bound);
    gradients that cancel below 1e-4 are compared at that magnitude."""
    (y_ref, g_ref, rtol), (y_fast, g_fast, _) = (_net_value_and_grads(impl, derived) for impl in BACKENDS[::-1])
    assert_close_rel(y_fast, y_ref, rtol, "logits")
    assert sorted(g_fast) == sorted(g_ref)
    for name in g_ref:
        assert_close_rel(g_fast[name], g_ref[name], rtol, name, floor=1e-4)
