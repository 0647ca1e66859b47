"""The derived (retraining) network, its analytic cost and the width-multiplier search."""
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from dso_nas.config import load_config
from dso_nas.errors import ArchitectureError, ConfigError
from dso_nas.spaces import get_space
from dso_nas.spaces.dense.arch import Layout, derive_architecture
from dso_nas.spaces.dense.cell import Cell
from dso_nas.spaces.dense.baselines import full_architecture, random_architecture
from dso_nas.ops import Cost
from dso_nas.models.heads import AuxHead, aux_head_cost
from dso_nas.spaces.dense.derived import DerivedCell, DerivedNet, arch_cost, derived_cell_cost, scaled_width
from dso_nas.spaces.dense.block import SearchBlock
from dso_nas.spaces.dense.graph import num_lambda
from dso_nas.models.width import find_width_multiplier

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
LAYOUT = Layout(stem="cifar", in_channels=3, stem_channels=4, channels=(4, 8), blocks=(2, 1), levels=3, ops=OPS)


def trainable(block, skip_prefix=None):
    return sum(p.data().size for p in block.collect_params().values()
               if p.grad_req != "null" and not (skip_prefix and p.name.startswith(skip_prefix)))


def build(arch, hw=8, **kwargs):
    mx.random.seed(0)
    net = DerivedNet(arch, num_classes=5, **kwargs)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    x = mx.nd.array(np.random.RandomState(0).normal(size=(4, 3, hw, hw)))
    return net, x


def architectures():
    n = num_lambda(3, 4)
    lam = np.zeros(n)
    lam[::3] = 0.5
    return {
        "share": derive_architecture([lam], scope="share", layout=LAYOUT),
        "full": derive_architecture([lam, np.ones(n), np.zeros(n)], scope="full", layout=LAYOUT),
        "random": random_architecture(LAYOUT, scope="full", keep_rate=0.3, seed=3),
        "full-network": full_architecture(LAYOUT),
    }


@pytest.mark.parametrize("name", ["share", "full", "random", "full-network"])
def test_derived_net_hybridizes_and_runs(name):
    net, x = build(architectures()[name], width_mult=1.5)
    y = net(x)
    assert y.shape == (4, 5) and np.isfinite(y.asnumpy()).all()
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    grad = net.stem.collect_params().values()
    assert any(np.abs(p.grad().asnumpy()).sum() > 0 for p in grad if p.grad_req != "null")


def test_empty_cell_is_exactly_the_identity():
    cell = DerivedCell(Cell(), 4, drop_path=0.3)
    cell.initialize()
    cell.hybridize(static_alloc=True)
    x = mx.nd.array(np.random.RandomState(1).normal(size=(2, 4, 8, 8)))
    assert list(cell.collect_params()) == []
    for train in (False, True):
        with autograd.record(train_mode=train):
            y = cell(x)
        np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
    conv = DerivedCell(Cell(), 4, shortcut="conv")
    conv.initialize()
    assert conv(x).shape == x.shape and not np.allclose(conv(x).asnumpy(), x.asnumpy())


def test_identity_architecture_network_params_are_stem_reductions_classifier():
    arch = derive_architecture([np.zeros(num_lambda(3, 4))], scope="share", layout=LAYOUT)
    net, x = build(arch)
    assert net(x).shape == (4, 5)
    cost = arch_cost(arch, 1.0, (8, 8), 5)
    assert trainable(net) == cost["total"].params
    assert cost["blocks"] == [Cost.zero()] * 3


def test_aux_head_returns_two_outputs():
    net, x = build(architectures()["full"], hw=16, aux_weight=0.4, aux_stage=1)
    logits, aux = net(x)
    assert logits.shape == aux.shape == (4, 5)
    with autograd.record():
        logits, aux = net(x)
        loss = logits.sum() + 0.4 * aux.sum()
    loss.backward()
    assert np.abs(net.aux_head.fc.weight.grad().asnumpy()).sum() > 0
    # the auxiliary head is not part of the reported cost
    assert trainable(net, skip_prefix=net.aux_head.prefix) == arch_cost(net.arch, 1.0, (16, 16), 5)["total"].params


def test_aux_head_cost_matches_its_parameters():
    head = AuxHead(8, 10, pool_stride=3)
    head.initialize()
    y = head(mx.nd.ones((2, 8, 8, 8)))
    assert y.shape == (2, 10)
    assert trainable(head) == aux_head_cost(8, 10, 8, 8, 3).params


def test_drop_path_only_in_training():
    net, x = build(architectures()["full-network"], drop_path=0.5)
    rates = [c.drop_path for c in net.cells()]
    np.testing.assert_allclose(rates, [0.5 / 3, 1.0 / 3, 0.5])
    a, b = net(x).asnumpy(), net(x).asnumpy()
    np.testing.assert_array_equal(a, b)
    outs = []
    for _ in range(3):
        with autograd.record(train_mode=True):
            outs.append(net(x).asnumpy())
    assert not (np.allclose(outs[0], outs[1]) and np.allclose(outs[1], outs[2]))
    net.set_drop_path(0.0)
    with autograd.record(train_mode=True):
        c = net(x).asnumpy()
    with autograd.record(train_mode=True):
        d = net(x).asnumpy()
    np.testing.assert_allclose(c, d, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, width_mult, kwargs", [
    ("share", 1.0, {}),
    ("full", 1.7, {}),
    ("random", 2.3, {"first_shortcut": "conv"}),
    ("full-network", 0.6, {"affine": False}),
])
def test_analytic_params_equal_counted_params(name, width_mult, kwargs):
    arch = architectures()[name]
    net, x = build(arch, width_mult=width_mult, **kwargs)
    net(x)
    cost = arch_cost(arch, width_mult, (8, 8), 5, **kwargs)
    total = cost["total"]
    assert trainable(net) == total.params
    assert cost["widths"] == [scaled_width(4, width_mult)] + [scaled_width(c, width_mult) for c in (4, 8)]
    assert len(cost["blocks"]) == 3 and len(cost["reductions"]) == 1
    parts = [cost["stem"], *cost["blocks"], *cost["reductions"], cost["final"], cost["classifier"]]
    assert total == sum(parts, Cost.zero())
    for cell, block, side in zip(net.cells(), cost["blocks"], (8, 8, 4)):
        assert block.params == trainable(cell)
        assert block == cell.cost(side, side, 3, OPS)
    assert total.flops > 0 and total.mac > total.flops // 100


def test_derived_cell_cost_equals_supernet_block_cost_under_its_mask():
    arch = architectures()["random"]
    for cell in arch.cells:
        mask = cell.mask(3, 4)
        block = SearchBlock(6, 3, OPS, affine=True)
        assert derived_cell_cost(cell, 6, 3, OPS, 8, 8) == block.cost(8, 8, mask)


def test_scaled_width_rounds_to_nearest_and_stays_positive():
    assert [scaled_width(48, m) for m in (1.0, 0.5, 0.51, 0.01)] == [48, 24, 24, 1]
    assert scaled_width(10, 0.25) == 3  # 2.5 rounds up


@pytest.mark.parametrize("target", [dict(target_params=20000), dict(target_flops=2e6),
                                    dict(target_params=30000, target_flops=1.5e6)])
def test_width_search_is_the_largest_multiplier_within_budget(target):
    arch = architectures()["random"]
    rtol = 1e-4
    m = find_width_multiplier(lambda w: arch_cost(arch, w, (8, 8), 5)["total"], rtol=rtol, **target)
    cost = arch_cost(arch, m, (8, 8), 5)["total"]
    above = arch_cost(arch, m * (1 + 2 * rtol), (8, 8), 5)["total"]
    tp, tf = target.get("target_params", 0), target.get("target_flops", 0)
    assert (not tp or cost.params <= tp) and (not tf or cost.flops <= tf)
    assert (tp and above.params > tp) or (tf and above.flops > tf)


def test_width_search_errors():
    arch = architectures()["full-network"]
    with pytest.raises(ConfigError, match="narrowest network"):
        find_width_multiplier(lambda w: arch_cost(arch, w, (8, 8), 5)["total"], target_params=100)
    with pytest.raises(ConfigError, match="target_params > 0 or target_flops > 0"):
        find_width_multiplier(lambda w: arch_cost(arch, w, (8, 8), 5)["total"])
    with pytest.raises(ConfigError, match="cannot be met sensibly: even width multiplier 3"):
        find_width_multiplier(lambda w: arch_cost(arch, w, (8, 8), 5)["total"], target_params=1e12, hi=3.0)


def test_baselines_scaled_to_the_same_budget():
    archs = [random_architecture(LAYOUT, scope=s, keep_rate=0.5, seed=0) for s in ("share", "full")]
    archs.append(full_architecture(LAYOUT))
    target = 40000
    counts = [arch_cost(a, find_width_multiplier(lambda w, a=a: arch_cost(a, w, (8, 8), 5)["total"], target_params=target),
                        (8, 8), 5)["total"].params for a in archs]
    assert all(0.9 * target < c <= target for c in counts)


def test_stem_width_must_match_first_stage():
    arch = full_architecture(Layout(stem="cifar", in_channels=3, stem_channels=6, channels=(4, 8), blocks=(1, 1),
                                    levels=2, ops=OPS))
    with pytest.raises(ArchitectureError, match="stem_channels"):
        DerivedNet(arch, num_classes=5)


def test_aligned_widths_are_multiples_and_non_decreasing():
    widths = [scaled_width(48, m / 100, 8) for m in range(5, 400)]
    assert all(w % 8 == 0 and w >= 8 for w in widths) and widths == sorted(widths)
    assert scaled_width(29, 1.0, 8) == 32 and scaled_width(29, 1.0, 1) == 29 and scaled_width(3, 1.0, 8) == 8
    arch = full_architecture(Layout(stem="cifar", in_channels=3, stem_channels=16, channels=(16, 32), blocks=(1, 1),
                                    levels=2, ops=("sep_conv_3x3", "max_pool_3x3")))
    m = find_width_multiplier(lambda w: arch_cost(arch, w, (8, 8), 5, width_divisor=8)["total"], target_params=30000)
    cost = arch_cost(arch, m, (8, 8), 5, width_divisor=8)
    assert cost["total"].params <= 30000 and all(w % 8 == 0 for w in cost["widths"])


#: Parameters of the authors' evaluation network for the complete block (every λ = 1), counted
#: with MXNet's ``infer_shape`` on the release's own symbol (XinbangZhang/DSO-NAS,
#: ``{Cifar,Imagenet}/symbol/dsonas_evaluation_symbol.py``: 4 levels, the 1x1 conv-BN-ReLU
#: shortcut on each stage's first block, ``final_bn`` + ``final_relu``, no auxiliary head):
#: CIFAR-10 at ``retrain_channel`` 48 (depth 110: 8 blocks a stage, 10 classes) and ImageNet
#: at 36 (``units`` [3, 3, 14, 7]: 2, 2, 13, 6 blocks, 1000 classes).
RELEASE_PARAMS = {"cifar": 10_031_002, "imagenet": 20_326_906}


@pytest.mark.parametrize("dataset, width, side, classes", [("cifar", 48, 32, 10), ("imagenet", 36, 224, 1000)])
def test_the_complete_network_has_the_release_parameter_count(dataset, width, side, classes):
    """The analytic count and the built graph's both equal the release's; without the final BN
    they fall short by exactly its γ and β (2·C_last), the gap the outside check found."""
    counts = {}
    for final_bn in (True, False):
        cfg = load_config(os.path.join(EXPERIMENTS, dataset, "search.yaml"),
                          ["model.first_shortcut=conv", "retrain.width_divisor=1", f"model.num_classes={classes}",
                           f"model.final_bn={str(final_bn).lower()}", "retrain.aux_weight=0"])
        space = get_space(cfg.model.space)
        arch = full_architecture(space.layout(cfg))
        mult = width / cfg.model.channels[0]
        cost = space.net_cost(arch, cfg, mult, (side, side), None)
        net = space.build_net(arch, cfg, width_mult=mult, backend="reference", head=None)
        counted = sum(int(np.prod(p.shape)) for p in net.collect_params().values() if p.grad_req != "null")
        assert counted == cost["total"].params
        counts[final_bn] = counted
    assert counts[True] == RELEASE_PARAMS[dataset]
    assert counts[True] - counts[False] == 2 * width * 2 ** (len(cfg.model.channels) - 1)
