"""The DARTS cell space: the plan, the reference genotypes at their published parameter counts,
the two derivation rules, pruning out of the graph, the budget blocks, the config's refusals,
and the pipeline (search with exact resume, retraining with drop path and aux head, export)."""
import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from dso_nas.config import load_config
from dso_nas.errors import ArchitectureError, ConfigError
from dso_nas.ops import graph_cost
from dso_nas.spaces import get_space
from dso_nas.spaces.archfile import architecture_from_dict, load_architecture
from dso_nas.spaces.darts.arch import Cell, DartsArchitecture
from dso_nas.spaces.darts.derive import derive_cell, live_entries
from dso_nas.spaces.darts.net import DartsNet, darts_cost
from dso_nas.spaces.darts.plan import cell_plans, edges, reduction_indices
from dso_nas.tasks import TASKS
from tolerance import assert_close_rel, net_rtol

REF = os.path.join(os.path.dirname(__file__), "..", "experiments", "darts", "reference")
EIGHT = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
         "dil_conv_3x3", "dil_conv_5x5"]
TINY = ["model.space=darts", "data.name=fashion_mnist", "model.in_channels=1", "model.num_classes=10",
        "model.darts.channels=4", "model.darts.layers=3", "model.darts.steps=2", "model.darts.stem_stride=2",
        "model.darts.eval_channels=4", "model.darts.eval_layers=3", "retrain.aux_weight=0", "retrain.drop_path=0",
        "retrain.dropout=0", "retrain.target_params=0", "retrain.width_divisor=1"]


def test_plan_reductions_and_widths():
    assert reduction_indices(8) == (2, 5) and reduction_indices(20) == (6, 13)
    plans = cell_plans(36, 20, 3, [4] * 20)
    assert [p.channels for p in plans[5:8]] == [36, 72, 72]
    assert plans[7].reduction_prev and plans[7].c_prev_prev == 4 * 36 and plans[7].c_prev == 4 * 72
    assert plans[0].c_prev_prev == plans[0].c_prev == 108
    assert len(edges(4)) == 14 and edges(2) == [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]


@pytest.mark.parametrize("name", ["darts_v1", "darts_v2", "pdarts", "pcdarts", "nasp"])
def test_reference_genotypes_build_at_their_counts(name):
    arch = load_architecture(os.path.join(REF, f"{name}.yaml"))
    cost = darts_cost(arch, 36, 20, 3, (32, 32), 10)
    published = arch.meta["published_params_m"]
    assert abs(cost["total"].params / 1e6 - published) < 0.1 * published, (cost["total"].params, published)
    if name == "darts_v2":  # DARTS' own count of its V2 network (utils.count_parameters_in_MB: 3.349342)
        assert cost["total"].params == 3_349_342


def test_the_evaluation_net_matches_its_analytic_cost_and_trains_with_aux_and_drop_path():
    arch = load_architecture(os.path.join(REF, "darts_v2.yaml"))
    net = DartsNet(arch, channels=4, layers=6, num_classes=10, drop_path=0.3, aux_weight=0.4)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.random.uniform(shape=(2, 3, 32, 32))
    with autograd.record():
        logits, aux = net(x)
        (logits.sum() + aux.sum()).backward()
    assert logits.shape == aux.shape == (2, 10)
    ref = DartsNet(arch, channels=4, layers=6, num_classes=10)
    ref.initialize()
    measured, analytic = graph_cost(ref, (1, 3, 32, 32)), darts_cost(arch, 4, 6, 3, (32, 32), 10)["total"]
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
    net.set_drop_path(0.0)  # inference is deterministic either way; drop path only acts in training
    a, b = net(x)[0].asnumpy(), net(x)[0].asnumpy()
    np.testing.assert_array_equal(a, b)


def test_darts_rule_keeps_two_edges_per_node_and_never_none():
    ops = EIGHT
    lam = np.zeros((len(edges(4)), len(ops)))
    lam[:, 0] = 9.0  # 'none' strongest everywhere: never chosen
    lam[0, 4], lam[1, 5], lam[2, 7] = 0.5, 0.9, 0.1  # node 2: edges (2,0), (2,1); node 3: (3,0)...
    lam[3, 6], lam[4, 3] = 0.8, 0.7  # node 3 reads 1 (dil 3x3) and 2 (skip)
    cell = derive_cell(lam.reshape(-1), 4, ops, "darts")
    assert cell.nodes[0] == (("sep_conv_3x3", 0), ("sep_conv_5x5", 1))
    assert cell.nodes[1] == (("dil_conv_3x3", 1), ("skip_connect", 2))
    assert all(len(n) == 2 for n in cell.nodes) and cell.concat == (2, 3, 4, 5)
    assert "none" not in [op for _, op, _ in cell.entries()]


def test_nonzero_rule_drops_dead_nodes_and_what_reads_them(caplog):
    ops = ["none", "sep_conv_3x3", "skip_connect"]
    plan = edges(3)  # nodes 2, 3, 4
    lam = np.zeros((len(plan), len(ops)))
    lam[plan.index((2, 0)), 1] = 0.3            # node 2 alive
    lam[plan.index((4, 3)), 2] = 0.4            # node 3 is dead: this entry goes
    lam[plan.index((4, 2)), 1] = 0.2            # node 4 alive through node 2
    lam[plan.index((3, 1)), 0] = 0.9            # 'none' keeps nothing alive
    cell = derive_cell(lam.reshape(-1), 3, ops, "nonzero")
    assert cell.nodes == ((("sep_conv_3x3", 0),), (), (("sep_conv_3x3", 2),)) and cell.concat == (2, 4)
    keep = live_entries(lam.reshape(-1) != 0, 3, ops).reshape(lam.shape)
    assert keep.sum() == 2 and not keep[plan.index((4, 3))].any()
    empty = derive_cell(np.zeros(lam.size), 3, ops, "nonzero")
    assert empty.concat == (2,) and "keeps no op" in caplog.text


def test_a_pruned_cell_computes_the_same_without_its_pruned_ops():
    space, task = get_space("darts"), TASKS.get("classification")
    cfg = load_config(None, TINY)
    net = space.build_supernet(cfg, backend="reference", head=task.head(cfg, "reference"))
    net.initialize(mx.init.Xavier())
    rng = np.random.RandomState(0)
    for p in net.lambda_params():
        lam = rng.uniform(0.1, 1.0, size=p.shape) * (rng.uniform(size=p.shape) > 0.5)
        p.set_data(mx.nd.array(lam))
    x = mx.nd.random.uniform(shape=(2, 1, 16, 16))
    net.hybridize()
    before = net(x).asnumpy()
    keep = [p.data().asnumpy() != 0 for p in net.lambda_params()]
    assert space.drop_pruned(net, keep) and not space.drop_pruned(net, keep)
    net.hybridize()
    assert_close_rel(net(x).asnumpy(), before, net_rtol(net, x.shape), "logits", floor=1.0)  # sums in another order
    pruned = net.cost((16, 16), keep)["total"]
    assert pruned.flops < net.cost((16, 16))["total"].flops
    blocks = space.budget_blocks(net, (16, 16))
    assert [b.param for b in blocks] == [0, 1]
    assert sum(b.cost(k).flops for b, k in zip(blocks, keep)) == sum(c.flops for c in net.cost((16, 16), keep)["blocks"])


@pytest.mark.parametrize("over, message", [
    (["search.budget=latency", "latency.model=table"], "no latency model"),
    (["model.darts.normal_ops=[none]"], "needs an op other than 'none'"),
    (["model.darts.reduce_ops=[skip_connect,skip_connect]"], "lists an op twice"),
    (["model.darts.normal_ops=[sep_conv_9x9]"], "sep_conv_9x9"),
    (["retrain.aux_weight=0.4"], "auxiliary head needs a map of at least 8x8"),
])
def test_the_config_refuses_in_one_line(over, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(None, TINY + over)
    assert "\n" not in str(e.value)


def test_the_dense_space_refuses_darts_ops_and_another_space_s_file():
    with pytest.raises(ConfigError, match="another space's cells"):
        load_config(None, ["model.ops=[darts_sep_conv_3x3]"])
    dense = load_config(None, ["data.name=fashion_mnist", "model.in_channels=1"])
    with pytest.raises(ConfigError, match="darts architecture files only"):
        get_space("darts").check_arch(object(), dense)
    with pytest.raises(ArchitectureError, match="out of range"):
        architecture_from_dict({"version": 1, "space": "darts", "normal": {"nodes": [[["skip_connect", 2]]],
                                                                          "concat": [2]},
                                "reduce": {"nodes": [[["skip_connect", 0]]], "concat": [2]}})


@pytest.mark.parametrize("unread", [0, 1])
def test_a_cell_input_no_entry_reads_gets_no_preprocessing_and_every_parameter_trains(unread):
    """A derived or random cell may read only one of its two inputs (the compare's random seed-1
    cell did): the unread input gets no preprocessing, so no parameter is left without a gradient
    (Gluon's Trainer refuses one) and the analytic cost counts what is built."""
    read = 1 - unread
    normal = Cell(((("dil_conv_3x3", read), ("max_pool_3x3", read)), (("sep_conv_3x3", 2), ("skip_connect", read))),
                  (2, 3))
    reduce = Cell(((("sep_conv_3x3", 0), ("max_pool_3x3", 1)), (("skip_connect", 2), ("avg_pool_3x3", 0))), (2, 3))
    arch = DartsArchitecture(normal, reduce, 3, {})
    net = DartsNet(arch, channels=4, layers=3, num_classes=10)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    names = list(net.collect_params())
    assert not [n for n in names if f"cell0_pre{unread}_" in n] and [n for n in names if f"cell0_pre{read}_" in n]
    ref = DartsNet(arch, channels=4, layers=3, num_classes=10)
    ref.initialize()
    measured, analytic = graph_cost(ref, (1, 3, 32, 32)), darts_cost(arch, 4, 3, 3, (32, 32), 10)["total"]
    assert (measured.params, measured.flops) == (analytic.params, analytic.flops)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    with autograd.record():
        loss = net(mx.nd.random.uniform(shape=(2, 3, 32, 32))).sum()
    loss.backward()
    trainer.step(2)  # raises for a parameter whose gradient was never written


def test_random_baseline_has_the_size_it_is_asked():
    cfg = load_config(None, TINY + ["model.darts.steps=4"])
    like = load_architecture(os.path.join(REF, "darts_v2.yaml"))
    arch = get_space("darts").baseline("random", cfg, keep_rate=0.0, seed=3, like=like)
    assert [len(arch.cell(k).entries()) for k in ("normal", "reduce")] == [8, 8]
    architecture_from_dict(arch.to_dict())


def test_search_resumes_exactly_then_retrains_and_exports(tmp_path):
    """A search stopped by SIGTERM after its first search epoch resumes to the straight run's λ
    and cells; the cells retrain and export."""
    from test_pipeline import sigterm_resume_matches_straight

    from dso_nas.run.export import export
    from dso_nas.run.retrain import retrain

    args = TINY + ["data.limit=512", "data.test_limit=128", "train.batch_size=32", "pretrain.epochs=1",
                   "search.epochs=3", "search.until=epochs", "search.gamma=0.05", "search.prune_every=1",
                   "progress=false", "data.augment=false"]
    straight, _ = sigterm_resume_matches_straight(args, tmp_path)
    arch_path = os.path.join(straight, "architecture.yaml")
    assert isinstance(load_architecture(arch_path), DartsArchitecture)
    out = retrain(None, TINY + [f"output_dir={tmp_path / 'retrain'}", "data.limit=256", "data.test_limit=128",
                                "retrain.epochs=1", "progress=false"], arch_path=arch_path)
    assert out is not None
    done = export(arch_path, os.path.join(str(tmp_path / "retrain"), "retrain.ckpt"), None, TINY,
                  str(tmp_path / "export"), formats=("mxnet",))
    assert os.path.exists(os.path.join(str(tmp_path / "export"), "model-symbol.json")) and done


def test_search_runs_in_mirror_mode(tmp_path, monkeypatch):
    """``train.mirror=true`` searches the DARTS space through its links (the gradients equal plain
    Gluon's: tests/test_mirror.py) and derives its cells; a prune rebuilds the executors."""
    import importlib

    run_search = importlib.import_module("dso_nas.run.search")  # the module (dso_nas.run.search is also a function)
    built = []
    real = run_search.make_executors
    monkeypatch.setattr(run_search, "make_executors", lambda *a, **k: built.append(real(*a, **k)) or built[-1])

    args = TINY + ["data.limit=128", "data.test_limit=64", "train.batch_size=32", "pretrain.epochs=0",
                   "search.epochs=2", "search.until=epochs", "search.gamma=0.05", "search.prune_every=1",
                   "progress=false", "data.augment=false", "train.mirror=true", f"output_dir={tmp_path}"]
    run = run_search.search(None, args)
    assert built and all(exe.plan["segments"] >= 2 for exes in built for exe in exes)
    assert isinstance(load_architecture(os.path.join(run, "architecture.yaml")), DartsArchitecture)


def test_cell_refuses_a_dead_node_that_is_read():
    with pytest.raises(ArchitectureError, match="reads node 2, which has no input"):
        Cell(((), (("skip_connect", 2),)), (3,)).check("normal")
