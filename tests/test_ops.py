"""Operation table, cost model and the fixed building pieces (ops.py, common.py)."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from dso_nas.errors import ConfigError
from dso_nas.models.common import (ConvBNReLU, ReductionBlock, Stem, conv_bn_relu_cost, reduction_cost, stem_cost,
                                   stem_out_shape)
from dso_nas.models.heads import Classifier, classifier_cost
from dso_nas.ops import (OPS, BNReLU, Cost, build_op, conv_cost, conv_out_size,
                                dense_cost, graph_cost, op_cost, pool_cost, sum_cost)
from dso_nas.ops.darts import DARTS_OP_NAMES


def _run(block, shape, hybridize=True):
    block.initialize(mx.init.Xavier())
    if hybridize:
        block.hybridize(static_alloc=True)
    return block(mx.nd.random.uniform(shape=shape))


def test_registry_order_and_names():
    assert list(OPS) == ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
                         "sep_conv_7x7", "mbconv_3x3_e3", "mbconv_3x3_e6", "mbconv_5x5_e3", "mbconv_5x5_e6",
                         "mbconv_7x7_e3", "mbconv_7x7_e6", "mbconv_3x3_e1",
                         *("darts_" + n for n in DARTS_OP_NAMES)]
    assert all(spec.name == name for name, spec in OPS.items())


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("affine", [False, True])
def test_op_builds_runs_and_cost_matches_graph(name, stride, affine):
    channels, size = 4, 8  # even: DARTS' factorized reduce halves an even side
    block = build_op(name, channels, stride, affine=affine)
    out = _run(block, (2, channels, size, size))
    side = conv_out_size(size, 3, stride)
    assert out.shape == (2, channels, side, side)
    analytic = op_cost(name, channels, size, size, stride, affine)
    measured = graph_cost(block, (2, channels, size, size))
    assert (analytic.params, analytic.flops) == (measured.params, measured.flops)
    # DARTS' zero op, and its skip at stride 1 (the identity), cost nothing (tests/test_darts_ops.py)
    if name != "darts_none" and (name, stride) != ("darts_skip_connect", 1):
        assert analytic.flops > 0 and analytic.mac > 0
        assert analytic.params > 0 or OPS.get(name).family == "darts"  # DARTS' pools carry no BN


def test_unknown_op_is_a_config_error_listing_valid_names():
    with pytest.raises(ConfigError, match="sep_conv_3x3.*max_pool_3x3"):
        build_op("conv_9x9", 4)
    with pytest.raises(ConfigError, match="valid"):
        op_cost("conv_9x9", 4, 8, 8)


def test_sep_conv_structure():
    block = build_op("sep_conv_5x5", 6, 2, affine=False)
    assert block.depthwise.weight.shape == (6, 1, 5, 5)
    assert block.depthwise._kwargs["stride"] == (2, 2) and block.depthwise._kwargs["pad"] == (2, 2)
    assert block.pointwise.weight.shape == (6, 6, 1, 1)
    assert not any(name.endswith("bias") for name in block.collect_params().keys())


def test_avg_pool_excludes_padding():
    block = build_op("avg_pool_3x3", 2, 1)
    block.initialize()
    out = block(mx.nd.ones((1, 2, 4, 4)))  # inference BN: running mean 0, var 1
    np.testing.assert_allclose(out.asnumpy(), 1.0 / np.sqrt(1.0 + 2e-5), rtol=1e-6)


def test_cost_arithmetic_and_hand_values():
    a, b = Cost(1, 2, 3), Cost(10, 20, 30)
    assert a + b == Cost(11, 22, 33)
    assert sum([a, b], Cost.zero()) == Cost(11, 22, 33)
    assert sum([a, b]) == Cost(11, 22, 33)
    # 1x1 conv 2 -> 3 on 4x4: 6 weights, 6*16 MACs, MAC = in + out + weights
    assert conv_cost(2, 3, 1, 4, 4) == Cost(6, 96, 2 * 16 + 3 * 16 + 6)
    # depthwise 3x3 stride 2 on 5x5 -> 3x3
    assert conv_cost(4, 4, 3, 5, 5, 2, groups=4) == Cost(36, 36 * 9, 100 + 36 + 36)
    assert pool_cost(2, 3, 4, 4) == Cost(0, 9 * 2 * 16, 2 * 16 * 2)
    assert dense_cost(8, 10) == Cost(90, 80, 8 + 10 + 90)
    assert sum_cost(1, 4, 2, 2) == Cost.zero()
    assert sum_cost(3, 4, 2, 2) == Cost(0, 0, 4 * 16)


@pytest.mark.parametrize("impl", ["onednn", "reference"])
def test_bn_not_affine_keeps_gamma_at_one(impl):
    bn = BNReLU(3, affine=False, backend=impl)
    bn.initialize()
    bn.hybridize(static_alloc=True)
    assert bn.gamma.grad_req == "null" and bn.beta.grad_req == "write"
    trainer = gluon.Trainer(bn.collect_params(), "sgd", {"learning_rate": 1.0, "wd": 0.1})
    x = mx.nd.random.normal(shape=(4, 3, 2, 2))
    beta_before = bn.beta.data().asnumpy().copy()
    with autograd.record():
        loss = (bn(x) * mx.nd.random.normal(shape=x.shape)).sum()
    loss.backward()
    trainer.step(1)
    np.testing.assert_array_equal(bn.gamma.data().asnumpy(), np.ones(3))
    assert np.abs(bn.beta.data().asnumpy() - beta_before).max() > 1e-3
    # fix_gamma: a γ value written by hand is ignored by the forward pass
    ref = bn(x).asnumpy()
    bn.gamma.set_data(mx.nd.full((3,), 5.0))
    np.testing.assert_allclose(bn(x).asnumpy(), ref, rtol=1e-6)


def test_bn_affine_has_learnable_gamma():
    bn = BNReLU(3, affine=True)
    assert bn.gamma.grad_req == "write"


@pytest.mark.parametrize("affine", [False, True])
def test_common_blocks_shapes_and_costs(affine):
    cases = [
        (ConvBNReLU(3, 5, 3, 2, affine), (2, 3, 9, 9), conv_bn_relu_cost(3, 5, 3, 9, 9, 2, affine)),
        (Stem("cifar", 1, 6, affine), (2, 1, 8, 8), stem_cost("cifar", 1, 6, 8, 8, affine)),
        (Stem("imagenet", 3, 8, affine), (2, 3, 17, 17),
         stem_cost("imagenet", 3, 8, 17, 17, affine)),
        (Stem("stride2", 1, 8, affine), (2, 1, 28, 28), stem_cost("stride2", 1, 8, 28, 28, affine)),
        (ReductionBlock(4, 8, affine), (2, 4, 7, 7), reduction_cost(4, 8, 7, 7, affine)),
    ]
    for block, shape, analytic in cases:
        out = _run(block, shape)
        assert out.shape[1:] == block.out_shape(*shape[2:])
        assert block.cost(*shape[2:]) == analytic
        measured = graph_cost(block, shape)
        assert (analytic.params, analytic.flops) == (measured.params, measured.flops)


def test_stem_layouts():
    assert stem_out_shape("cifar", 3, 48, 32, 32) == (48, 32, 32)
    assert stem_out_shape("imagenet", 3, 28, 224, 224) == (28, 56, 56)
    assert stem_out_shape("stride2", 1, 16, 28, 28) == (16, 14, 14)
    stem = Stem("imagenet", 3, 28)
    widths = [p.shape[0] for n, p in stem.collect_params().items() if n.endswith("weight")]
    assert widths == [14, 28]
    with pytest.raises(ConfigError, match="unknown stem"):
        Stem("mnist", 1, 8)


def test_reduction_branches_are_summed():
    block = ReductionBlock(2, 3)
    x = mx.nd.random.uniform(shape=(1, 2, 6, 6))
    block.initialize()
    np.testing.assert_allclose(block(x).asnumpy(),
                               (block.conv1(x) + block.conv3(x)).asnumpy(), rtol=1e-6)
    assert block.out_shape(7, 8) == (3, 4, 4)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_classifier(dropout):
    block = Classifier(6, 10, dropout)
    out = _run(block, (3, 6, 5, 5))
    assert out.shape == (3, 10)
    measured = graph_cost(block, (3, 6, 5, 5))
    analytic = classifier_cost(6, 10, 5, 5)
    assert block.cost(5, 5) == analytic
    assert (analytic.params, analytic.flops) == (measured.params, measured.flops)
