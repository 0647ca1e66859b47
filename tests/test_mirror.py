"""Mirror mode: the planner's choices, and mirror training == plain Gluon training."""
import functools

import numpy as np
import mxnet as mx
import pytest
from mxnet import autograd, gluon
from mxnet.gluon import nn

from dso_nas.engine.loops import train_step
from dso_nas.engine.mirror import MirrorExecutor, make_executors, mirror_step, plan_mirror
from dso_nas.models.common import ConvBNReLU
from dso_nas.models.heads import Classifier
from dso_nas.ops import backend_for_contexts
from dso_nas.tasks import get_task
from dso_nas.spaces.dense.supernet import SuperNet
from tolerance import assert_close_rel, net_rtol

OPS = ["sep_conv_3x3", "max_pool_3x3"]
BATCH, HW = 6, 8


def _supernet(scope="full", ctx=None, prefix="net_", backend="onednn"):
    mx.random.seed(1)
    net = SuperNet(stem="cifar", in_channels=3, stem_channels=8, channels=(8, 16), blocks=(2, 1),
                   levels=2, ops=OPS, scope=scope, num_classes=10, aggregation="fused",
                   prefix=prefix, backend=backend)
    net.initialize(mx.init.Xavier(), ctx=ctx or mx.cpu())
    _perturb(net)
    net.hybridize(static_alloc=True)
    return net


def _darts(prefix="darts_"):
    """A small DARTS search network: 5 cells (reductions at 1 and 3, so a factorized-reduce
    preprocessing too), 2 nodes, ops of every kind."""
    from dso_nas.spaces.darts.supernet import DartsSuperNet  # noqa: PLC0415 - only the darts cases need it
    mx.random.seed(5)
    ops = ["none", "sep_conv_3x3", "max_pool_3x3", "skip_connect", "dil_conv_3x3"]
    net = DartsSuperNet(in_channels=3, channels=4, layers=5, steps=2, stem_multiplier=3, normal_ops=ops,
                        reduce_ops=ops, num_classes=10, prefix=prefix)
    net.initialize(mx.init.Xavier())
    _perturb(net)
    net.hybridize(static_alloc=True)
    return net


def _toy(prefix="toy_"):
    """conv-BN-ReLU layers (learnable γ) and a classifier, as a HybridSequential."""
    mx.random.seed(2)
    net = nn.HybridSequential(prefix=prefix)
    with net.name_scope():
        for i in range(4):
            net.add(ConvBNReLU(3 if i == 0 else 8, 8, 3, affine=True))
        # the package's classifier: oneDNN's global pooling cannot back-propagate into the
        # fused BN-ReLU (see dso_nas.models.ops.global_avg_pool)
        net.add(Classifier(8, 10))
    net.initialize(mx.init.Xavier())
    _perturb(net)
    net.hybridize(static_alloc=True)
    return net


def _perturb(net):
    """Non-trivial λ and BN statistics so that every gradient and update is exercised."""
    rng = np.random.RandomState(3)
    for name, p in net.collect_params().items():
        if name.endswith("lambda"):
            p.set_data(mx.nd.array(rng.uniform(0.2, 1.0, p.shape)))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))


def _batch(n=BATCH):
    rng = np.random.RandomState(4)
    return (mx.nd.array(rng.normal(size=(n, 3, HW, HW))),
            mx.nd.array(rng.randint(0, 10, size=n).astype("float32")))


def _state(net, what="data", ctx=None):
    out = {}
    for name, p in net.collect_params().items():
        if what == "grad" and p.grad_req == "null":
            continue
        arr = p.data(ctx) if what == "data" else p.grad(ctx)
        out[name] = arr.asnumpy().copy()
    return out


@functools.lru_cache(maxsize=None)
def _rtol() -> float:
    """The mirror path recomputes the same ops, but several OpenMP threads may split a sum
    differently from one run to the next: the rounding bound of the larger of the two nets."""
    return max(net_rtol(build(), (BATCH, 3, HW, HW)) for build in (_supernet, _toy, _darts))


def _assert_same(a, b, rtol=None):
    assert sorted(a) == sorted(b)
    for name in a:
        assert_close_rel(a[name], b[name], rtol or _rtol(), name, floor=1e-3)  # the losses and logits are O(1)


def _plain_step(net, x, y, trainer):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        logits = net(x)
        loss = loss_fn(logits, y)
    loss.backward()
    grads = _state(net, "grad")
    trainer.step(x.shape[0])
    return loss.asnumpy(), logits.asnumpy(), grads


def _trainer(net):
    return gluon.Trainer(net.collect_params(), "nag",
                         {"learning_rate": 0.1, "momentum": 0.9, "wd": 3e-4})


# ----------------------------------------------------------------------------- planner


def _chain(n):
    """``n`` ReLUs in a row: every node is a cut point and weighs the same."""
    out = mx.sym.var("data")
    for i in range(n):
        out = mx.sym.relu(out, name=f"r{i}")
    return out


def test_plan_follows_the_sqrt_rule_on_a_uniform_chain():
    plan = plan_mirror(_chain(64))                 # cost (k - 1) + 64 / k: best at k = 8
    assert plan["segments"] == 8
    assert plan["nodes"] == 64 and plan["candidates"] == 63
    assert len(plan["boundaries"]) == 7
    assert plan["est_peak"] == 15 and plan["est_plain"] == 64
    # the last segment is never recomputed
    assert plan["mirrored"] == [f"r{i}" for i in range(int(plan["boundaries"][-1][1:]) + 1)]


@pytest.mark.parametrize("segments", [1, 2, 3, 4])
def test_plan_respects_segments(segments):
    net = _supernet()
    sym = net(mx.sym.var("data"))
    plan = plan_mirror(sym, segments, shapes={"data": (BATCH, 3, HW, HW)})
    assert plan["segments"] == segments
    assert len(plan["boundaries"]) == segments - 1
    assert bool(plan["mirrored"]) == (segments > 1)
    if segments > 1:
        assert plan["est_peak"] < plan["est_plain"]
        assert plan["mirrored"][-1] == plan["boundaries"][-1]


def test_plan_default_beats_no_mirror_and_clips_large_counts():
    sym = _supernet()(mx.sym.var("data"))
    shapes = {"data": (BATCH, 3, HW, HW)}
    best = plan_mirror(sym, shapes=shapes)
    assert best["segments"] > 1 and best["mirrored"]
    assert best["est_peak"] <= min(plan_mirror(sym, k, shapes=shapes)["est_peak"]
                                   for k in range(1, 6))
    many = plan_mirror(sym, 10_000, shapes=shapes)
    assert many["segments"] == many["candidates"] + 1
    with pytest.raises(ValueError, match="segments must be >= 1"):
        plan_mirror(sym, 0)


def test_plan_rejects_non_cut_candidates_and_recomputed_dropout():
    data = mx.sym.var("data")
    a = mx.sym.relu(data, name="a")
    b = mx.sym.relu(a, name="b")
    c = mx.sym.elemwise_add(a, b, name="c")         # a is read after b: b is no cut point
    with pytest.raises(ValueError, match="not a cut point"):
        plan_mirror(mx.sym.relu(c, name="d"), candidates=["b"])
    dropped = mx.sym.relu(mx.sym.Dropout(_chain(8), p=0.5, name="drop"), name="tail")
    with pytest.raises(ValueError, match="random operator"):
        plan_mirror(mx.sym.relu(dropped, name="end"), 2, candidates=["drop"])


# ----------------------------------------------------------------------------- mirror == plain


@pytest.mark.parametrize("build", [_supernet, _toy, _darts], ids=["supernet", "conv_bn_relu", "darts"])
def test_mirror_matches_gluon(build):
    plain, mirror = build(), build()
    x, y = _batch()
    t_plain, t_mirror = _trainer(plain), _trainer(mirror)
    exe = MirrorExecutor(mirror, x.shape, mx.cpu(), loss=gluon.loss.SoftmaxCrossEntropyLoss(), segments=3)
    assert exe.plan["segments"] == 3 and exe.plan["mirrored"]
    for _ in range(2):
        loss, logits, grads = _plain_step(plain, x, y, t_plain)
        (m_loss, m_logits), = mirror_step([exe], x, y, t_mirror, BATCH)
        _assert_same({"loss": m_loss.asnumpy(), "logits": m_logits.asnumpy()},
                     {"loss": loss, "logits": logits})
        _assert_same(_state(mirror, "grad"), grads)
        _assert_same(_state(mirror), _state(plain))   # weights, λ, BN running statistics
    _assert_same({"logits": exe.forward(x).asnumpy()}, {"logits": plain(x).asnumpy()})


def test_shared_lambda_gets_the_sum_over_segments():
    plain, mirror = _supernet("share"), _supernet("share")
    x, y = _batch()
    _, _, grads = _plain_step(plain, x, y, _trainer(plain))
    exe = MirrorExecutor(mirror, x.shape, mx.cpu(), loss=gluon.loss.SoftmaxCrossEntropyLoss(), segments=4)
    exe.forward_backward(x, y)
    got = _state(mirror, "grad")
    assert np.abs(got["net_shared_lambda"]).max() > 0
    _assert_same(got, grads)


def test_any_batch_size_and_bn_statistics():
    plain, mirror = _supernet(), _supernet()
    exe = MirrorExecutor(mirror, (BATCH, 3, HW, HW), mx.cpu(), loss=gluon.loss.SoftmaxCrossEntropyLoss())
    x, y = _batch(BATCH - 2)                          # a smaller last batch
    loss, _, grads = _plain_step(plain, x, y, _trainer(plain))
    m_loss, _ = exe.forward_backward(x, y)
    _assert_same({"loss": m_loss.asnumpy()}, {"loss": loss})
    _assert_same(_state(mirror, "grad"), grads)
    stats = lambda net: {k: v for k, v in _state(net).items() if "running" in k}  # noqa: E731
    _assert_same(stats(mirror), stats(plain))
    before = stats(_supernet())
    assert all(not np.array_equal(v, before[k]) for k, v in stats(mirror).items())


def test_two_contexts_match_plain_gluon():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    backend = backend_for_contexts(ctxs)  # as dso_nas.run.parts builds it
    plain, mirror = _supernet(ctx=ctxs, backend=backend), _supernet(ctx=ctxs, backend=backend)
    t_plain, t_mirror = _trainer(plain), _trainer(mirror)
    exes = make_executors(mirror, (BATCH + 1, 3, HW, HW), ctxs, loss=gluon.loss.SoftmaxCrossEntropyLoss(), segments=3)
    for n in (BATCH + 1, BATCH - 1):                  # uneven and smaller batches
        x, y = _batch(n)
        train_step(plain, t_plain, get_task("classification"), gluon.loss.SoftmaxCrossEntropyLoss(), x, y, ctxs)
        pairs = mirror_step(exes, x, y, t_mirror, n)
        assert [p[0].shape[0] for p in pairs] == [(n + 1) // 2, n // 2]
        for ctx in ctxs:
            _assert_same(_state(mirror, "data", ctx), _state(plain, "data", ctx))


def test_rejects_a_network_that_is_not_a_sequence():
    class Twice(gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.features = nn.HybridSequential()
                self.features.add(nn.Dense(4, in_units=3))
                self.classifier = nn.Dense(10, in_units=4)

        def sequential_layers(self):
            return [self.features, self.classifier]

        def hybrid_forward(self, F, x):
            return self.classifier(self.features(x) * 2)

    net = Twice()
    net.initialize()
    with pytest.raises(ValueError, match="applies its layers in sequence"):
        MirrorExecutor(net, (2, 3), mx.cpu(), loss=gluon.loss.SoftmaxCrossEntropyLoss())


def _pruned_supernet(space_name):
    """A supernet with a prune's masks applied: half the λ at zero (and the entries that die with
    them), the dead parts out of the graph (the dense full-scope supernet, or the DARTS one)."""
    from dso_nas.spaces import get_space  # noqa: PLC0415 - only this test needs the space seam
    net = _supernet() if space_name == "dense" else _darts()
    space = get_space(space_name)
    rng = np.random.RandomState(7)
    lams = [p.data().asnumpy() * (rng.rand(*p.shape) > 0.5) for p in net.lambda_params()]
    keep = space.live_lambda(net, lams)
    for p, k in zip(net.lambda_params(), keep):
        p.set_data(p.data() * mx.nd.array(k.astype("float32")))
    assert space.drop_pruned(net, keep)
    net.hybridize(static_alloc=True)
    return net


@pytest.mark.parametrize("space_name", ["dense", "darts"])
def test_mirror_of_a_pruned_supernet_matches_gluon(space_name):
    """After a prune the mirror executors are rebuilt on the smaller graph; they still compute what
    plain Gluon computes, and the dead ops' weights get no gradient in either."""
    plain, mirror = _pruned_supernet(space_name), _pruned_supernet(space_name)
    x, y = _batch()
    exe = MirrorExecutor(mirror, x.shape, mx.cpu(), loss=gluon.loss.SoftmaxCrossEntropyLoss(), segments=3)
    loss, logits, grads = _plain_step(plain, x, y, _trainer(plain))
    (m_loss, m_logits), = mirror_step([exe], x, y, _trainer(mirror), BATCH)
    _assert_same({"loss": m_loss.asnumpy(), "logits": m_logits.asnumpy()}, {"loss": loss, "logits": logits})
    dead = [n for n, p in plain.collect_params().items() if p.grad_req == "null" and n.endswith("weight")]
    assert dead and not set(dead) & set(grads)  # some ops died; their weights have no gradient
    _assert_same(_state(mirror, "grad"), grads)
