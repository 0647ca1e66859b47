"""The latency lookup table and the dense space's latency model (Eq. 19, issue 11)."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from dso_nas.search.latency import LatencyBudget
from dso_nas.latency import LatencyTable
from dso_nas.spaces import get_space
from dso_nas.spaces.dense.arch import derive_architecture
from dso_nas.spaces.dense.cell import Cell
from dso_nas.spaces.dense.derived import DerivedNet
from dso_nas.spaces.dense.supernet import SuperNet

SPACE = get_space("dense")
OPS = ("sep_conv_3x3", "avg_pool_3x3")


def _net(scope="full"):
    net = SuperNet(stem="cifar", in_channels=1, stem_channels=4, channels=(4, 8), blocks=(1, 1), levels=2, ops=OPS,
                   scope=scope, num_classes=3)
    net.initialize()
    return net


def _model(net, folder, fake=None):
    table = LatencyTable(str(folder), mx.cpu(), "reference", runs=1, warmup=0)
    model = SPACE.latency_model(net, table, build_net=lambda arch: DerivedNet(arch, num_classes=3),
                                input_shape=(1, 1, 8, 8), backend="reference")
    if fake is not None:  # a deterministic table: every entry from a formula of its key
        table.entries = {key: fake(key) for key, _, _ in model.entries()}
    return model


def _fake(key):
    kind = key.split("|")[0]
    if kind.startswith(("sum:", "reduce:")):
        return 0.5 + int(kind.split(":")[1]) * 0.25
    return {"noop": 0.1}.get(kind, 2.0 if "sep" in kind else 1.0 if kind.startswith("op:") else 5.0)


def test_table_is_measured_once_and_reused(tmp_path):
    net = _net()
    model = _model(net, tmp_path)
    spent = model.build(show_progress=False)
    assert spent > 0 and not model.table.missing(model.entries())
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    data = json.load(open(path))
    assert data["batch"] == 1 and data["runs"] == 1 and len(data["entries"]) == len(model.entries())
    assert all(v > 0 for v in data["entries"].values())
    again = _model(net, tmp_path)
    assert not again.table.missing(again.entries())  # read back from the file: nothing left to measure
    again.build(show_progress=False)
    assert again.table.entries == model.table.entries


def test_prediction_is_the_sum_of_the_pieces(tmp_path):
    net = _net()
    model = _model(net, tmp_path, _fake)
    layout = net.layout()
    identity = derive_architecture([np.zeros(10), np.zeros(10)], scope="full", layout=layout)
    assert model.predict(identity) == 5.0  # the fixed part alone
    # block 0: ops 1.0 (sep) and 2.1 (avg, reading in + 1.0 + 1.1? only in and 1.0 kept)
    lam = np.array([0, 0, 0, 1, 1, 0, 1, 0, 0, 1], dtype=float)  # in->2.1, 1.0->2.1, 1.0->out, 2.1->out
    arch = derive_architecture([lam, np.zeros(10)], scope="full", layout=layout)
    noop = 0.1
    sep, avg = 2.0 - noop, 1.0 - noop
    sum2 = 0.5 + 0.25 * 2 - noop   # the fitted line goes through the fake's exact line
    reduce2 = 0.5 + 0.25 * 2 - noop
    assert model.predict(arch) == pytest.approx(5.0 + sep + avg + sum2 + reduce2)


@pytest.mark.parametrize("scope", ["share", "full"])
def test_connection_deductions_are_non_negative_and_deterministic(tmp_path, scope):
    net = _net(scope)
    model = _model(net, tmp_path, _fake)
    rng = np.random.RandomState(0)
    for _ in range(5):
        lambdas = [(rng.uniform(size=p.shape) < 0.5).astype(float) for p in net.lambda_params()]
        budget = LatencyBudget(None, net.lambda_params(), deriver=SPACE.lambda_deriver(net), measure=model, gamma=0.1)
        first, current = budget.connection_latencies(lambdas)
        assert all((v >= 0).all() for v in first) and current >= 5.0
        again, _ = LatencyBudget(None, net.lambda_params(), deriver=SPACE.lambda_deriver(net), measure=model,
                                 gamma=0.1).connection_latencies(lambdas)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def test_identity_cell_costs_nothing(tmp_path):
    model = _model(_net(), tmp_path, _fake)
    assert model.cell_latency(Cell(), (4, 8, 8)) == 0.0


def test_in_fresh_process_returns_the_value_and_names_a_failure():
    import math

    from dso_nas.latency.isolation import in_fresh_process

    assert in_fresh_process(math.sqrt, (4.0,)) == 2.0
    with pytest.raises(RuntimeError, match="the probe failed: ValueError"):
        in_fresh_process(math.sqrt, (-1.0,), what="the probe")
