"""The mobile (ProxylessNAS) space: MBConv ops, the reference nets' counts, derivation, the
stopping and skip rules, spared λ, Eq. 19 from a fixed table, and a search through the pipeline."""
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from dso_nas.config import load_config
from dso_nas.errors import ArchitectureError, ConfigError
from dso_nas.ops import OPS, graph_cost
from dso_nas.ops.mbconv import MBConv, mbconv_cost
from dso_nas.run.trainers import lambda_trainer
from dso_nas.run.info import info
from dso_nas.search.budget_kinds import make_budget
from dso_nas.spaces import get_space
from dso_nas.spaces.archfile import architecture_yaml, load_architecture, save_architecture
from dso_nas.spaces.mobile import derive_ops, one_op_per_block
from dso_nas.spaces.mobile.arch import SKIP, MobileArchitecture
from dso_nas.spaces.mobile.latency import MobileLatencyModel, block_key
from dso_nas.spaces.mobile.net import MobileNet

REF = os.path.join(os.path.dirname(__file__), "..", "experiments", "mobile", "reference")
#: Trainable parameters of the published nets (ProxylessNAS GPU/CPU/mobile as released; MobileNetV2
#: 1.0 with its biased linear classifier).
PUBLISHED = {"proxyless_gpu": 7119848, "proxyless_cpu": 4361648, "proxyless_mobile": 4080512,
             "mobilenet_v2": 3504872}
SIX = ["mbconv_3x3_e3", "mbconv_3x3_e6", "mbconv_5x5_e3", "mbconv_5x5_e6", "mbconv_7x7_e3", "mbconv_7x7_e6"]
TINY = ["model.space=mobile", f"model.ops={SIX}".replace(" ", ""), "data.name=fashion_mnist", "model.in_channels=1",
        "model.num_classes=10", "model.mobile.first_conv=8", "model.mobile.first_block=8",
        "model.mobile.widths=[8,16]", "model.mobile.depths=[2,1]", "model.mobile.strides=[1,2]",
        "model.mobile.last_conv=16", "retrain.aux_weight=0", "retrain.drop_path=0", "retrain.dropout=0"]


@pytest.mark.parametrize("kernel,expansion", [(k, e) for k in (3, 5, 7) for e in (1, 3, 6)])
@pytest.mark.parametrize("stride", [1, 2])
def test_mbconv_structure_and_cost(kernel, expansion, stride):
    block = MBConv(8, 12, kernel, expansion, stride)
    block.initialize()
    block.hybridize()
    x = mx.nd.random.uniform(shape=(2, 8, 9, 9))
    with autograd.record():
        y = block(x)
    y.backward()
    assert y.shape == (2, 12, (9 - 1) // stride + 1, (9 - 1) // stride + 1)
    assert (block.expand is None) == (expansion == 1)
    measured, analytic = graph_cost(block, (1, 8, 9, 9)), mbconv_cost(8, 12, kernel, expansion, 9, 9, stride)
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
    # hand count, k=3 e=6 s=1: 8*48 + 9*48 + 48*12 weights, BN 2*(48+48+12)
    if (kernel, expansion, stride) == (3, 6, 1):
        assert analytic.params == 8 * 48 + 9 * 48 + 48 * 12 + 2 * (48 + 48 + 12)


def test_the_op_table_has_the_six_searchable_ops_and_the_fixed_block():
    mb = [n for n in OPS.names() if OPS.get(n).family == "mbconv"]
    assert sorted(mb) == sorted(SIX + ["mbconv_3x3_e1"])
    assert OPS.get("mbconv_7x7_e6").expansion == 6.0


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reference_nets_have_the_published_parameter_counts(name):
    out = info(None, [], os.path.join(REF, f"{name}.yaml"))
    assert out["params"] == PUBLISHED[name]
    assert out["input"] == [3, 224, 224]


def test_mobilenet_v2_matches_gluoncv_built_graph():
    from gluoncv.model_zoo import get_model

    theirs = get_model("mobilenetv2_1.0", pretrained=False)
    theirs.initialize()
    theirs(mx.nd.zeros((1, 3, 224, 224)))
    trainable = sum(int(np.prod(p.shape)) for p in theirs.collect_params().values() if p.grad_req != "null")
    assert trainable == 3503872  # GluonCV's classifier is a 1x1 conv without bias
    arch = load_architecture(os.path.join(REF, "mobilenet_v2.yaml"))
    ours = MobileNet(arch, num_classes=1000)
    ours.initialize()
    measured = graph_cost(ours, (1, 3, 224, 224))
    cfg = load_config(None, get_space("mobile").info_overrides(arch))
    analytic = get_space("mobile").net_cost(arch, cfg, 1.0, (224, 224), None)["total"]
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
    assert measured.params == trainable + 1000  # ours: a linear classifier with its 1000 biases


def test_architecture_file_round_trips_and_refuses_bad_blocks(tmp_path):
    arch = load_architecture(os.path.join(REF, "proxyless_gpu.yaml"))
    path = str(tmp_path / "a.yaml")
    save_architecture(arch, path)
    again = load_architecture(path)
    assert again == arch and architecture_yaml(again) == architecture_yaml(arch)
    bad = arch.to_dict()
    bad["stages"][0]["blocks"][0] = SKIP  # a stride-2 block cannot be skipped
    with pytest.raises(ArchitectureError, match="cannot be skipped"):
        MobileArchitecture.from_dict(bad)
    bad = arch.to_dict()
    bad["stages"][1]["blocks"][1] = "sep_conv_3x3"
    with pytest.raises(ArchitectureError, match="not an MBConv op"):
        MobileArchitecture.from_dict(bad)


def test_derivation_keeps_one_op_and_skips_only_residual_blocks(caplog):
    ops = SIX[:3]
    lambdas = [np.array([0.0, 0.5, 0.2]), np.zeros(3), np.zeros(3), np.array([0.0, 0.0, 0.1])]
    residual = [False, True, False, True]
    with caplog.at_level("WARNING", logger="dso_nas"):
        derived = derive_ops(lambdas, ops, residual)
    assert derived == [ops[1], SKIP, ops[0], ops[2]]
    assert "no residual" in caplog.text


def test_stopping_rule_one_op_per_block():
    assert one_op_per_block([np.array([0, 0.3, 0]), np.zeros(4)])
    assert not one_op_per_block([np.array([0.1, 0.3, 0]), np.zeros(4)])


def _tiny_supernet(extra=()):
    cfg = load_config(None, TINY + list(extra))
    space = get_space("mobile")
    net = space.build_supernet(cfg, backend="reference", head=None)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, 28, 28)))
    return cfg, space, net


def test_supernet_counts_and_residuals():
    cfg, space, net = _tiny_supernet()
    blocks = net.search_blocks()
    assert [b.plan.residual for b in blocks] == [True, True, False]  # 8->8 s1, 8->8 s1, 8->16 s2
    assert [p.shape for p in net.lambda_params()] == [(6,)] * 3
    measured = graph_cost(net, (1, 1, 28, 28))
    assert measured.params == net.cost((28, 28))["total"].params
    assert measured.flops == net.cost((28, 28))["total"].flops


def test_the_last_op_of_a_block_without_residual_is_spared():
    cfg, space, net = _tiny_supernet(["search.budget=flops"])
    trainer = lambda_trainer(net, cfg)
    budget = make_budget("flops", space=space, net=net, trainer=trainer, input_shape=(1, 28, 28), gamma=0.1,
                         protect=space.protected_lambda(net))
    lambdas = [np.array([0, 0, 0.4, 0, 0, 0]), np.array([0, 0.2, 0, 0, 0, 0]), np.array([0, 0, 0, 0, 0.3, 0])]
    budget.refresh(lambdas)
    scales = budget.in_force()
    assert scales[2][4] == 0 and np.all(scales[2][[0, 1, 2, 3, 5]] > 0)  # no residual: its last op is spared
    budget.refresh([lambdas[0], lambdas[1], np.array([0.1, 0, 0, 0, 0.3, 0])])
    assert np.all(budget.in_force()[2] > 0)  # two live ops: both are penalised
    assert np.all(scales[0] > 0) and np.all(scales[1] > 0)  # residual blocks may reach the identity


class _Table(dict):
    """A fixed latency table."""


def test_eq19_multipliers_from_a_fixed_table():
    cfg, space, net = _tiny_supernet(["search.budget=latency", "search.gamma=0.1", "search.gamma0=0.01"])
    build = lambda arch: MobileNet(arch, num_classes=10)  # noqa: E731
    table = _Table()
    model = MobileLatencyModel(table, net.macro, net.op_names, (1, 1, 28, 28), build)
    table[model.fixed_key] = 10.0
    for b, (plan, (h, w)) in enumerate(zip(model.plans, model.hw)):
        table[f"noop|c{plan.c_in}|h{h}|w{w}"] = 0.1
        for i, op in enumerate(SIX):
            table[block_key(plan, op, h, w)] = 0.1 + (b + 1) * (i + 1) * 0.01
    # blocks 0 and 1 have the same shapes, so the same entries: block 1's values (b = 1) win
    piece = [[(max(b, 1) + 1) * (i + 1) * 0.01 for i in range(6)] for b in range(3)]
    arch = MobileArchitecture.from_macro(net.macro, [SIX[2], SKIP, SIX[5]])
    expected = 10.0 + (piece[0][2] - piece[0][0]) + (0 - piece[1][0]) + (piece[2][5] - piece[2][0])
    assert model(arch) == pytest.approx(expected)
    trainer = lambda_trainer(net, cfg)
    budget = make_budget("latency", space=space, net=net, trainer=trainer, input_shape=(1, 28, 28), gamma=0.1,
                         gamma0=0.01, measure=model)
    lambdas = [np.ones(6)] * 3
    lats, _ = budget.connection_latencies(lambdas)
    want = [np.array(p) for p in piece]
    for got, w in zip(lats, want):
        np.testing.assert_allclose(got, w, rtol=1e-9)
    scales = budget.multipliers(lambdas)
    lo, hi = min(map(min, piece)), max(map(max, piece))
    np.testing.assert_allclose(scales[1], (0.01 + 0.1 * (want[1] - lo) / (hi - lo)) / 0.1)


def test_mobile_space_refuses_dense_ops_and_wall_clock_latency():
    with pytest.raises(ConfigError, match="MBConv ops"):
        get_space("mobile").check_config(load_config(None, TINY[:1] + TINY[2:]))
    with pytest.raises(ConfigError, match="latency.model=table"):
        load_config(None, TINY + ["search.budget=latency", "latency.model=wall_clock"])


def test_search_stops_at_one_op_per_block_and_retrains(tmp_path, caplog):
    from dso_nas.run.retrain import retrain
    from dso_nas.run.search import search

    run = str(tmp_path / "search")
    over = TINY + [f"output_dir={run}", "data.limit=512", "data.test_limit=200", "train.batch_size=64",
                   "pretrain.epochs=0", "search.epochs=30", "search.gamma=3.0", "search.budget=flops",
                   "progress=false", "data.augment=false", "latency.runs=1", "latency.warmup=0",
                   f"latency.table={tmp_path / 'latency'}", "latency.input_size=28"]
    run_dir = search(None, over)
    arch = load_architecture(os.path.join(run_dir, "architecture.yaml"))
    assert arch.ops()[2] != SKIP
    assert "no residual" not in caplog.text  # the spared λ kept the strided block alive
    records = [line for line in open(os.path.join(run_dir, "log.jsonl")) if '"phase": "search"' in line]
    assert 0 < len(records) < 30  # the one-op rule ended it before the cap
    assert '"ops_per_block"' in records[-1]
    import json
    assert all(n <= 1 for n in json.loads(records[-1])["ops_per_block"])
    # the table's prediction against the measured latency of the derived net
    from dso_nas.run.latency import latency
    checked = latency(None, over, [os.path.join(run_dir, "architecture.yaml")])
    assert checked["entries"] > 0 and os.path.exists(checked["table"])
    row = checked["architectures"][0]
    assert row["predicted_ms"] > 0 and row["measured_ms"] > 0 and np.isfinite(row["error_pct"])
    # Table 3 beside the run: the paper's rows, ours and the reference nets, params from the files
    from dso_nas.run.report import report
    text, data = report(run_dir)
    assert "paper Proxyless(GPU)*" in text and "MobileNet v2 (ref. file)" in text
    assert data["table3"]["Proxyless(GPU) (ref. file)"]["params"] == PUBLISHED["proxyless_gpu"]
    assert all(r["cpu_latency_ms"] > 0 for r in data["table3"].values())
    out = retrain(None, TINY + [f"output_dir={tmp_path / 'retrain'}", "data.limit=256", "data.test_limit=200",
                                "retrain.epochs=1", "retrain.target_params=0", "progress=false"],
                  arch_path=os.path.join(run_dir, "architecture.yaml"))
    assert out is not None
