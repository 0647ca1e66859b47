"""Budget-aware γ multipliers (TPAMI §3.4, Eqs. 17-19)."""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from dso_nas.errors import ConfigError
from dso_nas.spaces.dense.arch import Layout, derive_architecture
from dso_nas.spaces.dense.derived import arch_cost
from dso_nas.ops import op_cost
from dso_nas.spaces.dense.graph import block_edges, num_lambda
from dso_nas.spaces.dense.supernet import SuperNet
from dso_nas.search.apgnag import APGNAG, lambda_iterates
from dso_nas.search.budget_kinds import make_budget
from dso_nas.latency import wall_clock_latency
from dso_nas.search.latency import min_max_ratio
from dso_nas.spaces import get_space
from dso_nas.spaces.dense.derived import DerivedNet

SPACE = get_space("dense")

OPS = ("sep_conv_3x3", "avg_pool_3x3")
M, N = 2, 2
HW = (8, 8)
SHAPES = [(4, 8, 8), (8, 4, 4)]  # block inputs: stem keeps 8x8, the reduction halves it
NUM_CLASSES = 3
GAMMA, LR = 0.01, 0.5
LAYOUT = Layout(stem="cifar", in_channels=3, stem_channels=4, channels=(4, 8), blocks=(1, 1), levels=M, ops=OPS)

# Flat λ order of a 2-level, 2-op block (space.block_edges):
#  0 in->2.0   1 1.0->2.0   2 1.1->2.0   3 in->2.1   4 1.0->2.1   5 1.1->2.1
#  6 1.0->out  7 1.1->out   8 2.0->out   9 2.1->out
MASK_A = np.array([0, 0, 0, 1, 0, 0, 1, 0, 0, 1], dtype=bool)  # live: 1.0 (sep3), 2.1 (avg); 2 outputs
MASK_B = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 0], dtype=bool)  # live: 1.1 (avg); 1 output
EDGE_OP = [0, 0, 0, 1, 1, 1, 0, 1, 0, 1]  # op index whose MAC each entry gets


def make_net(scope):
    net = SuperNet(stem="cifar", in_channels=3, stem_channels=4, channels=(4, 8), blocks=(1, 1), levels=M,
                   ops=OPS, scope=scope, num_classes=NUM_CLASSES)
    net.initialize(mx.init.Constant(0.1))
    return net


def make_trainer(net):
    return gluon.Trainer(net.lambda_params(), APGNAG(learning_rate=LR, momentum=0.9, gamma=GAMMA),
                         kvstore="local")


def setup(kind, scope, **kwargs):
    net = make_net(scope)
    trainer = make_trainer(net)
    budget = make_budget(kind, space=SPACE, net=net, trainer=trainer, input_shape=(3,) + HW, gamma=GAMMA, ctx=mx.cpu(),
                         **kwargs)
    return net, trainer, budget


def lambdas_of(scope, *masks):
    """λ values (0.5 on kept edges) for the given masks: one for share, one per block for full."""
    return [m.astype(np.float64) * 0.5 for m in (masks[:1] if scope == "share" else masks)]


def scales(trainer, net):
    return [np.broadcast_to(trainer.optimizer.gamma_scale(p.name), p.shape) for p in net.lambda_params()]


def hand_flops(mask, shape):
    """Block FLOPs under MASK_A / MASK_B / all-ones, written out by hand from op costs."""
    c, h, w = shape
    sep, avg = (op_cost(o, c, h, w).flops for o in OPS)
    reduce_per_output = c * c * h * w  # 1x1 conv of each concatenated output
    if mask is MASK_A:
        return sep + avg + 2 * reduce_per_output
    if mask is MASK_B:
        return avg + reduce_per_output
    return 2 * sep + 2 * avg + 4 * reduce_per_output


def test_supernet_matches_the_hand_layout():
    net = make_net("full")
    assert [tuple(s) for s in net.block_shapes(HW)] == SHAPES
    assert num_lambda(M, N) == len(MASK_A) == len(block_edges(M, N))


# ----------------------------------------------------------------------------- none
@pytest.mark.parametrize("scope", ["share", "full"])
def test_none_gives_ones(scope):
    net, trainer, budget = setup("none", scope)
    budget.start_epoch(0, lambdas_of(scope, MASK_A, MASK_B))
    for s in scales(trainer, net):
        np.testing.assert_array_equal(s, 1.0)
        assert s.ndim == 1
    assert budget.summary() == {"kind": "none", "scale": {"min": 1.0, "mean": 1.0, "max": 1.0}}


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="search.budget"):
        setup("params", "share")


# ----------------------------------------------------------------------------- flops (Eq. 17)
def test_flops_full_scope_is_per_block_ratio():
    net, trainer, budget = setup("flops", "full")
    budget.refresh(lambdas_of("full", MASK_A, MASK_B))
    expected = [hand_flops(MASK_A, SHAPES[0]) / hand_flops(None, SHAPES[0]),
                hand_flops(MASK_B, SHAPES[1]) / hand_flops(None, SHAPES[1])]
    assert 0 < expected[1] < expected[0] < 1
    for s, e in zip(scales(trainer, net), expected):
        np.testing.assert_allclose(s, e, rtol=1e-12)
    summary = budget.summary()
    assert summary["kind"] == "flops"
    np.testing.assert_allclose(summary["scale"], expected, rtol=1e-5)
    json.dumps(summary)
    # pruning more lowers the multiplier; everything pruned gives 0
    budget.refresh(lambdas_of("full", MASK_B, np.zeros_like(MASK_B)))
    s = scales(trainer, net)
    np.testing.assert_allclose(s[0], hand_flops(MASK_B, SHAPES[0]) / hand_flops(None, SHAPES[0]), rtol=1e-12)
    np.testing.assert_array_equal(s[1], 0.0)


def test_flops_share_scope_sums_over_blocks():
    net, trainer, budget = setup("flops", "share")
    budget.start_epoch(0, lambdas_of("share", MASK_A))
    expected = (sum(hand_flops(MASK_A, s) for s in SHAPES) / sum(hand_flops(None, s) for s in SHAPES))
    (s,) = scales(trainer, net)
    np.testing.assert_allclose(s, expected, rtol=1e-12)
    np.testing.assert_allclose(budget.summary()["block_ratio"],
                               [hand_flops(MASK_A, sh) / hand_flops(None, sh) for sh in SHAPES], rtol=1e-5)


def test_flops_multipliers_drive_the_threshold_and_survive_save_load(tmp_path):
    net, trainer, budget = setup("flops", "full")
    params = net.lambda_params()
    budget.refresh(lambdas_of("full", MASK_A, MASK_B))
    saved = [s.copy() for s in scales(trainer, net)]
    path = str(tmp_path / "lam.states")
    trainer.save_states(path)

    # a fresh trainer gets them back
    other = make_trainer(net)
    other.load_states(path)
    for a, b in zip(scales(other, net), saved):
        np.testing.assert_array_equal(a, b)

    # change them, then load_states replaces the optimizer: the budget reads the new one
    budget.refresh(lambdas_of("full", MASK_B, MASK_B))
    assert not np.array_equal(scales(trainer, net)[0], saved[0])
    old_opt = trainer.optimizer
    trainer.load_states(path)
    assert trainer.optimizer is not old_opt
    np.testing.assert_allclose(budget.summary()["scale"], [float(s[0]) for s in saved], rtol=1e-5)
    budget.refresh(lambdas_of("full", MASK_B, MASK_B))
    in_force = scales(trainer, net)

    # one λ step with zero gradient: iterate = max(0, λ - η·γ·scale)
    before = [p.data().asnumpy() for p in params]
    with autograd.record():
        loss = mx.nd.add_n(*[(p.data() * 0).sum() for p in params])
    loss.backward()
    trainer.step(1)
    its = lambda_iterates(trainer)
    for p, lam, s in zip(params, before, in_force):
        np.testing.assert_allclose(its[p.name], np.maximum(0.0, lam - LR * GAMMA * s), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- mac (Eq. 18)
def hand_mac():
    """Per-entry MAC of each block's op and the network maximum."""
    per_block = [np.array([op_cost(OPS[j], *shape).mac for j in EDGE_OP], dtype=float) for shape in SHAPES]
    mac_max = max(op_cost(o, *shape).mac for o in OPS for shape in SHAPES)
    return per_block, mac_max


def test_mac_full_and_share():
    per_block, mac_max = hand_mac()
    net, trainer, budget = setup("mac", "full")
    budget.refresh(lambdas_of("full", MASK_A, MASK_B))
    got = scales(trainer, net)
    for s, mac in zip(got, per_block):
        np.testing.assert_allclose(s, mac / mac_max, rtol=1e-12)
    assert max(float(s.max()) for s in got) == pytest.approx(1.0)
    # edges into 2.0 and from 1.0 / 2.0 to the output carry sep_conv_3x3's MAC, the rest avg_pool's
    assert got[0][0] == got[0][6] == got[0][8] != got[0][3] == got[0][7] == got[0][9]
    assert budget.summary()["mac_max"] == mac_max

    net, trainer, budget = setup("mac", "share")
    budget.refresh(lambdas_of("share", MASK_A))
    (s,) = scales(trainer, net)
    np.testing.assert_allclose(s, (per_block[0] + per_block[1]) / 2 / mac_max, rtol=1e-12)
    json.dumps(budget.summary())


# ----------------------------------------------------------------------------- latency (Eq. 19)
class FakeLatency:
    """Deterministic probe: the derived network's analytic FLOPs; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, arch):
        self.calls += 1
        return float(arch_cost(arch, 1.0, HW, NUM_CLASSES)["total"].flops)


def expected_latency_scales(scope, lambdas, gamma0):
    """Eq. 19 with LAT_c = latency(with c) - latency(without c), via derive_architecture."""
    masks = [lam != 0 for lam in lambdas]

    def lat(ms):
        arch = derive_architecture([m.astype(float) for m in ms], scope=scope, layout=LAYOUT)
        return float(arch_cost(arch, 1.0, HW, NUM_CLASSES)["total"].flops)

    deltas, archs = [], set()
    for p, m in enumerate(masks):
        d = np.zeros(m.size)
        for k in range(m.size):
            on = [x.copy() for x in masks]
            off = [x.copy() for x in masks]
            on[p][k], off[p][k] = True, False
            d[k] = lat(on) - lat(off)
            for ms in (on, off):
                archs.add(tuple(derive_architecture([x.astype(float) for x in ms], scope=scope,
                                                    layout=LAYOUT).cells))
        deltas.append(d)
    flat = np.concatenate(deltas)
    lo, hi = flat.min(), flat.max()
    return [(gamma0 + GAMMA * (d - lo) / (hi - lo)) / GAMMA for d in deltas], deltas, len(archs)


@pytest.mark.parametrize("scope", ["share", "full"])
def test_latency_fake_measure_values_and_cache(scope):
    fake = FakeLatency()
    gamma0 = 0.002
    net, trainer, budget = setup("latency", scope, gamma0=gamma0, measure=fake, latency_every=2)
    lambdas = lambdas_of(scope, MASK_A, MASK_B)
    budget.start_epoch(0, lambdas)
    expected, deltas, n_archs = expected_latency_scales(scope, lambdas, gamma0)
    for s, e in zip(scales(trainer, net), expected):
        np.testing.assert_allclose(s, e, rtol=1e-12)
    # every distinct derived network measured exactly once; toggles that change nothing hit the cache
    n_entries = sum(lam.size for lam in lambdas)
    assert fake.calls == budget.measurements == n_archs < n_entries + 1
    assert budget.cache_hits == n_entries + 1 - n_archs
    # edge 0 (in -> 2.0) of the first λ: 2.0 has no kept output, so the edge changes nothing
    assert deltas[0][0] == 0.0
    # removing a live output edge of a live op saves time: positive latency, above the pruned edge
    assert deltas[0][6] > 0 and expected[0][6] > expected[0][0]
    assert min(float(s.min()) for s in expected) == pytest.approx(gamma0 / GAMMA)
    assert max(float(s.max()) for s in expected) == pytest.approx(gamma0 / GAMMA + 1.0)

    # epoch 1 is not a re-measure epoch (every = 2); epoch 2 re-measures, all from the cache
    budget.start_epoch(1, lambdas)
    assert fake.calls == n_archs and budget.cache_hits == n_entries + 1 - n_archs
    budget.start_epoch(2, lambdas)
    assert fake.calls == n_archs and budget.cache_hits == 2 * (n_entries + 1) - n_archs
    budget.refresh(lambdas)  # FLOPs/MAC hook: a no-op for latency
    assert fake.calls == n_archs
    summary = budget.summary()
    assert summary["kind"] == "latency" and summary["epoch"] == 2
    json.dumps(summary)


def test_latency_degenerate_and_gamma_zero():
    net, trainer, budget = setup("latency", "full", gamma0=0.003, measure=lambda arch: 7.0)
    budget.start_epoch(0, lambdas_of("full", MASK_A, MASK_B))
    for s in scales(trainer, net):
        np.testing.assert_allclose(s, 0.003 / GAMMA, rtol=1e-12)
    assert [r.tolist() for r in min_max_ratio([np.ones(2), np.ones(3)])] == [[0, 0], [0, 0, 0]]
    with pytest.raises(ConfigError, match="gamma0"):
        make_budget("latency", space=SPACE, net=net, trainer=trainer, input_shape=(3,) + HW, gamma=0.0, gamma0=0.1,
                    measure=lambda arch: 1.0)


def test_latency_resumed_budget_keeps_the_saved_multipliers(tmp_path):
    fake = FakeLatency()
    net, trainer, budget = setup("latency", "share", measure=fake, latency_every=3)
    budget.start_epoch(0, lambdas_of("share", MASK_A))
    saved = scales(trainer, net)[0].copy()
    path = str(tmp_path / "lam.states")
    trainer.save_states(path)

    calls = fake.calls
    other = make_trainer(net)
    other.load_states(path)
    resumed = make_budget("latency", space=SPACE, net=net, trainer=other, input_shape=(3,) + HW, gamma=GAMMA,
                          measure=fake, latency_every=3)
    resumed.start_epoch(1, lambdas_of("share", MASK_B))  # not due: the saved multipliers stay
    assert fake.calls == calls
    np.testing.assert_array_equal(scales(other, net)[0], saved)
    fresh = make_budget("latency", space=SPACE, net=net, trainer=make_trainer(net), input_shape=(3,) + HW, gamma=GAMMA,
                        measure=fake, latency_every=3)
    fresh.start_epoch(1, lambdas_of("share", MASK_A))  # nothing in the optimizer: measure now
    assert fresh.measurements > 0
    np.testing.assert_allclose(scales(fresh.trainer, net)[0], saved, rtol=1e-12)


def test_latency_wall_clock_on_a_tiny_net():
    net, trainer, budget = setup("latency", "share", gamma0=0.001, latency_runs=1, latency_warmup=1,
                                 latency_input=8, latency_net=lambda arch: DerivedNet(arch, num_classes=NUM_CLASSES))
    budget.start_epoch(0, lambdas_of("share", MASK_A))
    (s,) = scales(trainer, net)
    assert s.shape == (num_lambda(M, N),) and np.isfinite(s).all()
    assert s.min() >= 0.1 - 1e-9 and s.max() <= 1.1 + 1e-9  # γ₀/γ + [0, 1]
    assert budget.measurements >= 2
    assert all(v > 0 and np.isfinite(v) for v in budget.cache.values())


def test_wall_clock_probe_leaves_the_random_streams_alone():
    arch = derive_architecture([MASK_A.astype(float)], scope="share", layout=LAYOUT)
    mx.random.seed(5)
    a = mx.nd.random.uniform(shape=(4,)).asnumpy()
    mx.random.seed(5)
    value = wall_clock_latency(DerivedNet(arch, num_classes=NUM_CLASSES), (1, 3, 8, 8), runs=2, warmup=0)
    b = mx.nd.random.uniform(shape=(4,)).asnumpy()
    assert value > 0 and np.isfinite(value)
    np.testing.assert_array_equal(a, b)


def test_budget_registry_lists_the_kinds_and_the_config_refuses_others():
    from dso_nas.config import load_config
    from dso_nas.search.budget_kinds import BUDGETS

    assert set(BUDGETS.names()) == {"flops", "mac", "latency", "none"}
    with pytest.raises(ConfigError) as info:
        load_config(None, ["search.budget=watts"])
    assert "\n" not in str(info.value) and "search.budget" in str(info.value)
