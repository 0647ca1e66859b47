"""Search block and supernet: λ layout, fused == per-edge, scopes, shapes and costs."""
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from dso_nas.models.common import reduction_cost, stem_cost
from dso_nas.models.heads import classifier_cost
from dso_nas.ops import Cost, bn_cost, conv_cost, graph_cost, op_cost, sum_cost
from dso_nas.spaces.dense.block import SearchBlock, block_cost
from dso_nas.spaces.dense.graph import live_edges, live_ops
from dso_nas.spaces.dense.graph import block_edges, num_lambda
from dso_nas.spaces.dense.supernet import LAMBDA_PATTERN, SuperNet
from tolerance import assert_close_rel, gamma, net_rtol

OPS4 = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]


def _tiny_net(scope, aggregation="fused", prefix="net_", **overrides):
    args = dict(stem="cifar", in_channels=3, stem_channels=4, channels=(4, 6), blocks=(2, 1),
                 levels=2, ops=OPS4, scope=scope, num_classes=5, aggregation=aggregation)
    args.update(overrides)
    return SuperNet(prefix=prefix, **args)


def _randomize(params, rng, lam_values=None):
    """Random weights/BN statistics; λ uniform with ~30 % exact zeros (or ``lam_values``)."""
    for name, p in params.items():
        if name.endswith("lambda"):
            value = lam_values if lam_values is not None else \
                rng.uniform(0.1, 1.0, p.shape) * (rng.uniform(size=p.shape) > 0.3)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, p.shape)
        else:
            value = rng.normal(0.0, 0.5, p.shape)
        p.set_data(mx.nd.array(value))


def _forward_backward(net, x):
    with autograd.record():
        y = net(x)
        loss = (y * y).sum()
    loss.backward()
    grads = {n: p.grad().asnumpy() for n, p in net.collect_params().items()
             if p.grad_req != "null"}
    return y.asnumpy(), grads


def _assert_close_rel(a, b, rtol):  # the fused and per-edge sums add the same terms in other orders
    assert_close_rel(a, b, rtol, floor=1e-6)


def _copy_params(src, dst):
    src_params, dst_params = src.collect_params(), dst.collect_params()
    assert sorted(src_params.keys()) == sorted(dst_params.keys())
    for name, p in src_params.items():
        dst_params[name].set_data(p.data())


# ----------------------------------------------------------------------------- live_ops


def test_live_ops_rules():
    # M=3, N=1: edges 0,1 -> (2,0); 2,3,4 -> (3,0); 5,6,7 -> out
    assert num_lambda(3, 1) == 8
    mask = np.zeros(8, bool)
    mask[[4, 7]] = True  # (2,0)->(3,0)->out, but (2,0) has no live input
    assert live_ops(mask, 3, 1) == set()
    mask[1] = True  # (1,0)->(2,0): the chain is now fed
    assert live_ops(mask, 3, 1) == {(1, 0), (2, 0), (3, 0)}
    # M=2, N=2: only (1,1)->(2,1) kept: (2,1) reaches nothing, so (1,1) dies too
    mask = np.zeros(num_lambda(2, 2), bool)
    mask[5] = True
    assert live_ops(mask, 2, 2) == set()
    assert live_ops(np.ones(num_lambda(2, 2)), 2, 2) == {(1, 0), (1, 1), (2, 0), (2, 1)}
    with pytest.raises(ValueError, match="needs 10"):
        live_ops(np.ones(9), 2, 2)


def test_live_edges_drop_edges_of_dead_ops():
    mask = np.zeros(num_lambda(2, 2), bool)
    mask[[1, 8, 7]] = True  # (1,0)->(2,0), (2,0)->out, (1,1)->out
    edges = block_edges(2, 2)
    assert live_edges(mask, 2, 2) == [edges[1], edges[7], edges[8]]
    mask[5] = True  # (1,1)->(2,1) but (2,1) is dead
    assert edges[5] not in live_edges(mask, 2, 2)


# ----------------------------------------------------------------------------- block


def test_block_lambda_layout_and_selection():
    block = SearchBlock(4, 4, OPS4, prefix="blk_")
    lams = block.collect_params(LAMBDA_PATTERN)
    assert list(lams.keys()) == ["blk_lambda"]
    assert lams["blk_lambda"].shape == (124,) == (num_lambda(4, 4),)
    assert [n for n in block.collect_params().keys() if re.match(LAMBDA_PATTERN, n)] == \
        ["blk_lambda"]
    block.initialize(mx.init.Xavier())
    np.testing.assert_array_equal(block.lam.data().asnumpy(), np.ones(124))
    assert block.reduce_weight.shape == (4, 16 * 4, 1, 1)


@pytest.mark.parametrize("ops", [OPS4, ("sep_conv_3x3",)], ids=["N4", "N1"])
@pytest.mark.parametrize("impl", ["onednn", "reference"])
def test_block_fused_equals_per_edge(impl, ops):
    rng = np.random.RandomState(0)
    blocks = []
    for aggregation in ("fused", "per_edge"):
        block = SearchBlock(4, 4, ops, aggregation=aggregation, prefix="blk_", backend=impl)
        block.initialize()
        block.hybridize(static_alloc=True)
        blocks.append(block)
    _randomize(blocks[0].collect_params(), rng)
    assert (blocks[0].lam.data().asnumpy() == 0).sum() >= 0.2 * blocks[0].n_lambda
    _copy_params(blocks[0], blocks[1])
    x = mx.nd.array(rng.normal(size=(2, 4, 8, 8)))
    (y_f, g_f), (y_p, g_p) = (_forward_backward(b, x) for b in blocks)
    rtol = net_rtol(blocks[0], x.shape)
    _assert_close_rel(y_f, y_p, rtol)
    assert g_f.keys() == g_p.keys() and "blk_lambda" in g_f
    for name in g_f:
        _assert_close_rel(g_f[name], g_p[name], rtol)


def test_block_with_zero_lambda_adds_a_constant():
    block = SearchBlock(3, 2, OPS4[:2], prefix="blk_")
    block.initialize()
    block.lam.set_data(mx.nd.zeros(block.lam.shape))
    beta = np.array([0.5, -0.3, 0.2], np.float32)
    block.reduce_bn.beta.set_data(mx.nd.array(beta))
    x = mx.nd.random.normal(shape=(2, 3, 4, 4))
    with autograd.record():  # training-mode BN of an all-zero map gives β
        y = block(x)
    np.testing.assert_allclose((y - x).asnumpy(),
                               np.broadcast_to(np.maximum(beta, 0)[None, :, None, None], x.shape),
                               atol=1e-6)


def test_block_cost_with_masks():
    ops = ["sep_conv_3x3", "max_pool_3x3"]
    channels, h, w = 4, 6, 6
    block = SearchBlock(channels, 2, ops, prefix="blk_")
    n = num_lambda(2, 2)
    full = block.cost(h, w)
    assert block.cost(h, w, np.ones(n)) == full
    assert block.cost(h, w, np.zeros(n)) == Cost.zero()
    sep = op_cost("sep_conv_3x3", channels, h, w, affine=False)
    pool = op_cost("max_pool_3x3", channels, h, w, affine=False)
    tail = bn_cost(channels, affine=False) + sum_cost(2, channels, h, w)  # reduce BN + residual
    mask = np.zeros(n, bool)
    mask[[1, 8]] = True  # (1,0) -> (2,0) -> out
    assert block.cost(h, w, mask) == sep + sep + conv_cost(channels, channels, 1, h, w) + tail
    mask[[0, 7]] = True  # in -> (2,0) makes a 2-input sum; (1,1) -> out keeps the max pool
    expected = (sep + pool + sum_cost(2, channels, h, w) + sep
                + conv_cost(2 * channels, channels, 1, h, w) + tail)
    assert block.cost(h, w, mask) == expected
    assert block_cost(channels, 2, ops, h, w, mask, affine=False) == expected
    # full block equals the graph of the built block
    block.initialize()
    measured = graph_cost(block, (1, channels, h, w))
    assert (full.params, full.flops) == (measured.params, measured.flops)


# ----------------------------------------------------------------------------- supernet


@pytest.mark.parametrize("scope", ["share", "full"])
def test_supernet_fused_equals_per_edge(scope):
    rng = np.random.RandomState(1)
    nets = []
    for aggregation in ("fused", "per_edge"):
        net = _tiny_net(scope, aggregation)
        net.initialize()
        net.hybridize(static_alloc=True)
        nets.append(net)
    _randomize(nets[0].collect_params(), rng)
    _copy_params(nets[0], nets[1])
    x = mx.nd.array(rng.normal(size=(2, 3, 8, 8)))
    (y_f, g_f), (y_p, g_p) = (_forward_backward(n, x) for n in nets)
    rtol = net_rtol(nets[0], x.shape)
    _assert_close_rel(y_f, y_p, rtol)
    for name in g_f:
        _assert_close_rel(g_f[name], g_p[name], rtol)


def test_share_and_full_scopes():
    share, full = _tiny_net("share"), _tiny_net("full")
    assert [p.name for p in share.lambda_params()] == ["net_shared_lambda"]
    assert [p.name for p in full.lambda_params()] == [
        "net_stage0_block0_lambda", "net_stage0_block1_lambda", "net_stage1_block0_lambda"]
    assert share.block_lambda_index() == [0, 0, 0] and full.block_lambda_index() == [0, 1, 2]
    assert all(b.lam is share.lambda_params()[0] for b in share.search_blocks())
    assert list(share.collect_params(LAMBDA_PATTERN).keys()) == ["net_shared_lambda"]
    assert list(full.collect_params(LAMBDA_PATTERN).keys()) == [
        p.name for p in full.lambda_params()]
    w_share, w_full = share.weight_params(), full.weight_params()
    assert sorted(w_share.keys()) == sorted(w_full.keys())
    assert not any(n.endswith("lambda") for n in w_share.keys())
    n_all = len(list(share.collect_params().keys()))
    assert len(list(w_share.keys())) == n_all - 1
    assert len(list(full.collect_params().keys())) == n_all + 2


def test_shared_lambda_gradient_is_sum_over_blocks(tmp_path):
    rng = np.random.RandomState(2)
    share, full = _tiny_net("share"), _tiny_net("full")
    for net in (share, full):
        net.initialize()
        net.hybridize(static_alloc=True)
    lam = rng.uniform(0.2, 1.0, share.lambda_params()[0].shape)
    _randomize(share.collect_params(), rng, lam_values=lam)
    for name, p in share.weight_params().items():
        full.collect_params()[name].set_data(p.data())
    for p in full.lambda_params():
        p.set_data(mx.nd.array(lam))
    x = mx.nd.array(rng.normal(size=(2, 3, 8, 8)))
    (y_s, g_s), (y_f, g_f) = _forward_backward(share, x), _forward_backward(full, x)
    rtol = net_rtol(full, x.shape) + 2 * gamma(len(full.lambda_params()))  # + the blocks' λ gradients summed
    _assert_close_rel(y_s, y_f, rtol)
    summed = sum(g_f[p.name] for p in full.lambda_params())
    _assert_close_rel(g_s["net_shared_lambda"], summed, rtol)
    # save/load round trip with a Parameter shared by several blocks
    path = str(tmp_path / "share.params")
    share.save_parameters(path)
    share.lambda_params()[0].set_data(mx.nd.zeros(lam.shape))
    share.load_parameters(path)
    np.testing.assert_allclose(share.lambda_params()[0].data().asnumpy(), lam, rtol=1e-6)


def test_cifar_layout_tiny_widths():
    net = SuperNet(stem="cifar", in_channels=3, stem_channels=4, channels=(4, 6, 8),
                   blocks=(8, 8, 8), levels=4, ops=OPS4, scope="share", num_classes=10)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    assert net(mx.nd.random.uniform(shape=(2, 3, 8, 8))).shape == (2, 10)
    shapes = net.block_shapes((8, 8))
    assert shapes == [(4, 8, 8)] * 8 + [(6, 4, 4)] * 8 + [(8, 2, 2)] * 8
    assert len(net.search_blocks()) == 24
    assert net.lambda_params()[0].shape == (124,)


def test_imagenet_layout_and_adapter():
    net = SuperNet(stem="imagenet", in_channels=3, stem_channels=4, channels=(4, 6, 6, 8),
                   blocks=(2, 2, 13, 6), levels=1, ops=OPS4, scope="full", num_classes=7)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    assert net(mx.nd.random.uniform(shape=(1, 3, 32, 32))).shape == (1, 7)
    shapes = net.block_shapes((32, 32))
    assert shapes[0] == (4, 8, 8) and shapes[4] == (6, 2, 2) and shapes[-1] == (8, 1, 1)
    assert len(net.lambda_params()) == 23
    adapted = _tiny_net("full", stem_channels=3)
    names = list(adapted.collect_params().keys())
    assert any(n.startswith("net_adapter_") for n in names)
    assert not any(n.startswith("net_adapter_") for n in _tiny_net("full").collect_params().keys())


@pytest.mark.parametrize("scope", ["share", "full"])
def test_supernet_cost_matches_graph(scope):
    net = _tiny_net(scope, stem_channels=3)
    net.initialize(mx.init.Xavier())
    analytic = net.cost((8, 8))
    measured = graph_cost(net, (2, 3, 8, 8))
    assert (analytic["total"].params, analytic["total"].flops) == \
        (measured.params, measured.flops)
    assert len(analytic["blocks"]) == 3 and len(analytic["reductions"]) == 1
    assert analytic["total"] == (analytic["stem"] + sum(analytic["blocks"], Cost.zero())
                                 + sum(analytic["reductions"], Cost.zero())
                                 + analytic["final"] + analytic["classifier"])
    assert analytic["final"] == bn_cost(6)  # the release's final BN (learnable γ) on the last stage


def test_supernet_cost_with_masks():
    net = _tiny_net("full")
    zeros = [np.zeros(p.shape[0], bool) for p in net.lambda_params()]
    pruned = net.cost((8, 8), zeros)
    assert all(c == Cost.zero() for c in pruned["blocks"])
    assert pruned["total"] == (stem_cost("cifar", 3, 4, 8, 8, False) + reduction_cost(4, 6, 8, 8, False)
                               + bn_cost(6) + classifier_cost(6, 5, 4, 4))
    ones = [np.ones(p.shape[0], bool) for p in net.lambda_params()]
    assert net.cost((8, 8), ones)["total"] == net.cost((8, 8))["total"]
    mixed = net.cost((8, 8), [ones[0], zeros[1], ones[2]])
    assert mixed["blocks"][1] == Cost.zero()
    assert mixed["blocks"][0] == net.cost((8, 8))["blocks"][0] != Cost.zero()
    with pytest.raises(ValueError, match="expected 3"):
        net.cost((8, 8), ones[:1])
    share = _tiny_net("share")
    one_mask = share.cost((8, 8), [np.zeros(num_lambda(2, 4), bool)])
    assert all(c == Cost.zero() for c in one_mask["blocks"])


def test_shared_lambda_shape_is_checked():
    lam = mx.gluon.Parameter("x_lambda", shape=(7,))
    with pytest.raises(ValueError, match="needs"):
        SearchBlock(4, 4, OPS4, lam=lam)
