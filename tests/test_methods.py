"""The search-method seam (``search.method``): the registry, NASP's proximal steps and DARTS'
softmax edges checked numerically, the config's refusals, and exact resume of each method."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from dso_nas.config import load_config
from dso_nas.engine.loops import SearchSteps, clip_global_norm
from dso_nas.errors import ConfigError
from dso_nas.search.methods import METHODS, get_method
from dso_nas.search.methods.darts import edge_softmax
from dso_nas.search.methods.nasp import NaspSteps, binarize, size_burden
from dso_nas.search.schedule import search_rate
from dso_nas.spaces import SPACES
from dso_nas.spaces.darts.supernet import DartsSuperNet
from dso_nas.tasks import TASKS
from tolerance import assert_close_rel, net_rtol

OPS = ("avg_pool_3x3", "sep_conv_3x3", "max_pool_3x3", "skip_connect", "dil_conv_3x3")  # NASP: no "none"
STEPS = 2  # nodes per cell: 5 edges
SHAPE = (4, 1, 8, 8)
TINY = ["model.space=darts", "data.name=fashion_mnist", "model.in_channels=1", "model.num_classes=10",
        "model.darts.channels=4", "model.darts.layers=3", "model.darts.steps=2", "model.darts.stem_stride=2",
        "model.darts.eval_channels=4", "model.darts.eval_layers=3", "retrain.aux_weight=0", "retrain.drop_path=0",
        "retrain.dropout=0", "retrain.target_params=0", "retrain.width_divisor=1", "search.budget=none",
        "model.darts.normal_ops=[" + ",".join(OPS) + "]"]


def _net(weighting="linear", prefix="n_"):
    mx.random.seed(3)
    net = DartsSuperNet(in_channels=1, channels=4, layers=3, steps=STEPS, stem_multiplier=3, normal_ops=OPS,
                        reduce_ops=OPS, num_classes=10, weighting=weighting, prefix=prefix)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    return net


def _batch(seed=4):
    rng = np.random.RandomState(seed)
    return mx.nd.array(rng.normal(size=SHAPE)), mx.nd.array(rng.randint(0, 10, size=SHAPE[0]).astype("float32"))


def _cfg(method, *extra):
    return load_config(None, TINY + [f"search.method={method}", *extra])


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_every_method_runs_a_round_on_the_darts_space():
    assert list(METHODS.names()) == ["dso", "nasp", "darts"]
    task = TASKS.get("classification")
    x, y = _batch()
    for name in METHODS.names():
        method = get_method(name)
        cfg = _cfg(name, "search.budget=flops" if method.sparse else "search.budget=none")
        net = _net(method.weighting, prefix=f"{name}_")
        method.init_arch(net, cfg)
        from dso_nas.run.trainers import lambda_trainer, search_weight_trainer  # noqa: PLC0415
        arch_t, w_t = lambda_trainer(net, cfg), search_weight_trainer(net.weight_params(), cfg)
        before = [p.data().asnumpy().copy() for p in net.lambda_params()]
        steps = method.steps(net, w_t, arch_t, cfg=cfg, task=task, ctxs=[mx.cpu()])
        for step in (steps.arch, steps.weights):
            meter = step(x, y)
            assert np.isfinite(meter.result()["loss"])
        after = method.arch_values(net, arch_t)
        assert any(np.abs(a - b).max() > 0 for a, b in zip(after, before)), name
        arch = method.derive(SPACES.get("darts"), cfg, after, {})
        assert arch.normal.steps == STEPS


# ----------------------------------------------------------------------------- NASP


def test_binarize_keeps_one_op_per_edge_and_two_edges_per_node():
    n = 3
    alpha = np.array([
        [0.1, 0.5, 0.2],   # node 2, input 0: op 1 at 0.5
        [0.9, 0.1, 0.1],   # node 2, input 1: op 0 at 0.9
        [0.3, 0.3, 0.1],   # node 3, input 0: tie -> op 0 at 0.3
        [0.2, 0.2, 0.6],   # node 3, input 1: op 2 at 0.6
        [0.3, 0.1, 0.0],   # node 3, input 2: op 0 at 0.3 (ties input 0: the earlier edge stays)
    ]).reshape(-1)
    bar = binarize(alpha, 2, n).reshape(5, n)
    want = np.zeros((5, n))
    want[0, 1] = want[1, 0] = want[2, 0] = want[3, 2] = 1
    np.testing.assert_array_equal(bar, want)
    assert set(np.unique(bar)) == {0.0, 1.0}


def test_size_burden_is_the_op_share_of_nasp_parameter_counts():
    b = size_burden(["conv_3x1_1x3", "conv_7x1_1x7", "sep_conv_7x7", "conv_3x3"])
    counts = np.array([864, 2016, 1464, 1296], float)  # NASP's PARAMS (tests/test_darts_ops.py)
    np.testing.assert_allclose(b, counts / counts.sum(), rtol=1e-12)


def _nasp(eta=0.0):
    net = _net()
    get_method("nasp").init_arch(net, None)
    rng = np.random.RandomState(9)  # distinct α, so that ᾱ is not the tie-break's
    for p in net.lambda_params():
        p.set_data(mx.nd.array(rng.uniform(0.1, 0.9, p.shape)))
    twin = net.twin()
    twin.hybridize(static_alloc=True)
    arch_t = gluon.Trainer(net.lambda_params(), "sgd", {"learning_rate": 1.0})
    w_t = gluon.Trainer(net.weight_params(), "sgd", {"learning_rate": 0.1})
    steps = NaspSteps(net, twin, w_t, arch_t, task=TASKS.get("classification"), ctxs=[mx.cpu()], steps=STEPS,
                      ops=[OPS, OPS], eta=eta, clip_norm=0.0)
    return net, steps


def _grad_at(net, values, x, y):
    """The α gradient of the summed loss with every λ parameter set to ``values`` (all ops computed)."""
    for p, v in zip(net.lambda_params(), values):
        p.set_data(mx.nd.array(v))
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    return [p.grad().asnumpy().copy() for p in net.lambda_params()]


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_nasp_arch_step_applies_the_gradient_at_the_binary_alpha_to_alpha_then_clips(eta):
    net, steps = _nasp(eta)
    x, y = _batch()
    alpha = [p.data().asnumpy().copy() for p in net.lambda_params()]
    bar = [binarize(a, STEPS, len(OPS)) for a in alpha]
    reference, _ = _nasp(eta)  # the same net, for the reference gradient (BN statistics move once in each)
    grads = _grad_at(reference, bar, x, y)
    grads[0] = grads[0] / SHAPE[0] + 2 * eta * np.tile(size_burden(OPS), 5) * bar[0]  # R(A) on the normal cell
    grads[1] = grads[1] / SHAPE[0]
    steps.arch(x, y)
    got = [p.data().asnumpy() for p in net.lambda_params()]
    rtol = net_rtol(net, SHAPE)
    for a, g, out in zip(alpha, grads, got):
        assert_close_rel(out, np.clip(a - g, 0.0, 1.0), rtol, "α after the step", floor=1.0)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_nasp_weight_step_trains_only_the_selected_ops():
    net, steps = _nasp()
    x, y = _batch()
    bar = [binarize(p.data().asnumpy(), STEPS, len(OPS)) for p in net.lambda_params()]
    before = {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()}
    steps.arch(x, y)  # its backward writes every weight's gradient: none of it may reach the weight step
    bar = [binarize(p.data().asnumpy(), STEPS, len(OPS)) for p in net.lambda_params()]
    alpha = [p.data().asnumpy().copy() for p in net.lambda_params()]
    steps.weights(x, y)
    after = {n: p.data().asnumpy() for n, p in net.collect_params().items()}
    for p, a in zip(net.lambda_params(), alpha):  # α restored after the step
        np.testing.assert_array_equal(p.data().asnumpy(), a)
    moved_ops, still_ops = set(), set()
    for cell in net.search_cells():
        chosen = bar[net.lambda_index(cell)].reshape(len(cell.edges), len(OPS))
        for (e, k), op in cell._ops.items():
            names = [q for q in op.collect_params() if q.endswith("weight")]
            changed = any(np.abs(after[q] - before[q]).max() > 0 for q in names)
            (moved_ops if chosen[e, k] else still_ops).add((cell.name, e, k, changed))
    assert any(c for *_, c in moved_ops) and not any(c for *_, c in still_ops)


def test_the_twin_at_the_binary_alpha_computes_the_whole_net_at_it():
    net, steps = _nasp()
    x, _ = _batch()
    bar = [binarize(p.data().asnumpy(), STEPS, len(OPS)) for p in net.lambda_params()]
    assert steps.twin.select([b != 0 for b in bar])
    steps.twin.hybridize(static_alloc=True)
    for p, b in zip(net.lambda_params(), bar):
        p.set_data(mx.nd.array(b))
    with autograd.predict_mode():
        whole, twin = net(x).asnumpy(), steps.twin(x).asnumpy()
    assert_close_rel(twin, whole, net_rtol(net, SHAPE), "twin logits", floor=1.0)


# ----------------------------------------------------------------------------- DARTS


def test_softmax_edges_equal_linear_edges_at_the_softmax_weights():
    soft, lin = _net("softmax", "s_"), _net("linear", "l_")
    rng = np.random.RandomState(2)
    alpha = [rng.normal(size=p.shape) for p in soft.lambda_params()]
    for p, a in zip(soft.lambda_params(), alpha):
        p.set_data(mx.nd.array(a))
    for q, p in zip(lin.collect_params().values(), soft.collect_params().values()):
        q.set_data(p.data())
    for p, a in zip(lin.lambda_params(), alpha):
        p.set_data(mx.nd.array(edge_softmax(a, len(OPS))))
    x, _ = _batch()
    with autograd.predict_mode():
        assert_close_rel(soft(x).asnumpy(), lin(x).asnumpy(), net_rtol(soft, SHAPE), "logits", floor=1.0)


def test_darts_init_and_derivation_use_the_softmax():
    cfg = _cfg("darts")
    net = _net("softmax")
    get_method("darts").init_arch(net, cfg)
    values = [p.data().asnumpy() for p in net.lambda_params()]
    assert all(np.abs(v).max() < 0.01 and v.std() > 0 for v in values)  # 1e-3 · N(0, 1)
    values[0].reshape(5, len(OPS))[:, 1] += 1.0  # sep_conv_3x3 wins every normal edge
    arch = get_method("darts").derive(SPACES.get("darts"), cfg, values, {})
    assert {op for _, op, _ in arch.normal.entries()} == {"sep_conv_3x3"}
    assert [len(node) for node in arch.normal.nodes] == [2, 2] and arch.meta["method"] == "darts"


# ----------------------------------------------------------------------------- shared pieces


def test_cosine_search_rate_is_pytorch_s_annealing_stepped_per_epoch():
    cfg = _cfg("darts", "search.lr_schedule=cosine", "search.lr=0.025", "search.lr_min=0.001", "search.epochs=50")
    rates = [search_rate(cfg.search, e) for e in range(50)]
    assert rates[0] == pytest.approx(0.025) and rates[25] == pytest.approx(0.013)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] > 0.001
    assert search_rate(_cfg("dso", "search.budget=flops").search, 7) == 0.1


def test_global_norm_clip_scales_the_batch_mean_gradient():
    p = gluon.Parameter("w", shape=(3,))
    p.initialize()
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 0.0})
    with autograd.record():
        loss = (p.data() * mx.nd.array([30.0, 40.0, 0.0])).sum()
    loss.backward()  # gradient [30, 40, 0]: norm 50, over a "batch" of 2 its mean has norm 25
    clip_global_norm(trainer, 5.0, 2)
    np.testing.assert_allclose(p.grad().asnumpy(), [6.0, 8.0, 0.0], rtol=4 * 2.0 ** -24)  # mean [3, 4, 0]: norm 5; a square root, a division, a product in float32


@pytest.mark.parametrize("over, message", [
    (["model.space=dense", "model.in_channels=1", "search.method=nasp"], r"searches the spaces \['darts'\]"),
    (["search.method=darts", "search.budget=flops"], "has no budget: set search.budget=none"),
    (["search.method=nasp", "train.mirror=true"], "no mirror mode"),
    (["search.method=nasp", "model.darts.normal_ops=[none,sep_conv_3x3]"], "ops without 'none'"),
    (["search.method=prox"], r"'search.method' must be one of \['dso', 'nasp', 'darts'\]"),
])
def test_the_config_refuses_in_one_line(over, message):
    base = TINY if not over[0].startswith("model.space=dense") else ["data.name=fashion_mnist", "search.budget=none"]
    with pytest.raises(ConfigError, match=message) as e:
        load_config(None, base + over)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("method", ["nasp", "darts"])
def test_search_resumes_exactly_and_refuses_another_method(method, tmp_path):
    """A search stopped by SIGTERM after its first search epoch resumes to the straight run's α
    and cells; a checkpoint of one method is not resumed under another."""
    from test_pipeline import _cli, sigterm_resume_matches_straight

    args = TINY + [f"search.method={method}", "data.limit=256", "data.test_limit=64", "train.batch_size=32",
                   "pretrain.epochs=0", "search.epochs=3", "search.until=epochs", "search.lr=0.025",
                   "search.lr_schedule=cosine", "search.clip_norm=5", "progress=false", "data.augment=false"]
    other = "darts" if method == "nasp" else "nasp"

    def refuses_another_method(killed):
        rc, err = _cli(["search", "--resume", killed, f"search.method={other}"])
        assert rc == 2 and "search.method" in err, err[-500:]

    straight, _ = sigterm_resume_matches_straight(args, tmp_path, before_resume=refuses_another_method)
    from dso_nas.run.report import report
    text, data = report(straight)  # NASP's Table 2 beside a DARTS-space run
    assert "NASP Table 2: NASP (12 ops)" in text and "DSO-NAS-share" not in text and data["search_method"] == method


@pytest.mark.parametrize("meta, expected", [("{run: r, method: nasp, derive: darts}", "nasp"),
                                            ("{baseline: random, seed: 1}", "random (baseline)"),
                                            (None, "darts")])
def test_report_names_the_method_of_the_architecture_not_of_the_retraining_config(tmp_path, meta, expected):
    """A retraining folder's config keeps the default ``search.method``; the report asks the
    architecture file's ``meta`` what made the cells (no file or no meta: the config's method)."""
    from dso_nas.config import load_config
    from dso_nas.run.report import arch_origin

    cfg = load_config(None, TINY + ["search.method=darts"])
    path = None
    if meta is not None:
        path = tmp_path / "architecture.yaml"
        path.write_text(f"version: 1\nspace: darts\nmeta: {meta}\n")
    assert arch_origin(str(path) if path else None, cfg) == expected


def test_report_of_a_darts_space_retraining_names_its_method_and_the_compare_reference(tmp_path):
    """A retraining folder (no search logged) of NASP cells on Fashion-MNIST: the method from the
    architecture, NASP's Table 2 and the compare's random cells as the reference, no search cost."""
    import json

    from dso_nas.config import load_config
    from dso_nas.run.report import COMPARE_REFERENCE, report

    (tmp_path / "config.yaml").write_text(load_config(None, TINY).dump())
    (tmp_path / "architecture.yaml").write_text("version: 1\nspace: darts\nmeta: {method: nasp}\n")
    (tmp_path / "result.json").write_text(json.dumps({
        "test_error": 0.154, "test_acc": 0.846, "eval_split": "test", "params": 79570, "flops": 2948820,
        "width_mult": 0.875, "dataset": "fashion_mnist", "paper_row": "DSO-NAS-share"}))
    text, data = report(str(tmp_path))
    assert data["search_method"] == "nasp" and "searched here by: nasp" in text
    assert COMPARE_REFERENCE["fashion_mnist"]["name"] in text and "ResNet-20 (study" not in text
    assert "search cost here" not in text and "15.40" in text


def test_report_of_a_damaged_architecture_file_is_one_line(tmp_path):
    """The report reads the architecture's ``meta`` with the package's YAML reader: a damaged
    file is an ``ArchitectureError`` of one line naming it, not a silent fallback."""
    from dso_nas.config import load_config
    from dso_nas.errors import ArchitectureError
    from dso_nas.run.report import arch_origin

    path = tmp_path / "architecture.yaml"
    path.write_text("meta: [\n")
    with pytest.raises(ArchitectureError) as e:
        arch_origin(str(path), load_config(None, TINY))
    assert str(path) in str(e.value) and "\n" not in str(e.value)
