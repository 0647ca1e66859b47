"""Permanent pruning and the clamp of λ′ (issue 26): a pruned λ stays exactly zero in the
iterate, the momentum and the forward pass; a clamped λ′ is never negative; the mask lives in
the checkpoint, so a pruning search killed mid-run resumes to the same λ."""
import json
import os
import pickle

import mxnet as mx
import pytest
import numpy as np
from mxnet import gluon

from dso_nas.search.apgnag import APGNAG, lambda_iterates
from dso_nas.search.pruning import prune_lambdas
from test_pipeline import _cli, _micro, fmnist, sigterm_resume_matches_straight  # noqa: F401 - fmnist is a fixture


def _trainer(clamp=False, values=(1.0, 0.5, 0.02, 0.8)):
    lam = gluon.Parameter("lam", shape=(len(values),), init=mx.init.Constant(0))
    lam.initialize(ctx=mx.cpu())
    lam.set_data(mx.nd.array(values))
    return lam, gluon.Trainer([lam], APGNAG(learning_rate=0.1, momentum=0.9, gamma=0.1, clamp=clamp))


def _step(lam, trainer, grad):
    with mx.autograd.record():
        loss = (lam.data() * mx.nd.array(grad)).sum()
    loss.backward()
    trainer.step(1)


def test_a_pruned_lambda_stays_zero_whatever_its_gradient():
    lam, trainer = _trainer()
    _step(lam, trainer, [0.0, 0.0, 1.0, 0.0])  # λ_2 = 0.02 - 0.1 - 0.01 < 0: the prox zeroes it
    assert lambda_iterates(trainer)["lam"][2] == 0 and lam.data().asnumpy()[2] < 0  # λ′ = μv, negative
    assert prune_lambdas(trainer, {"lam": lambda_iterates(trainer)["lam"] == 0}) == 1
    assert lam.data().asnumpy()[2] == 0  # the forward pass sees an exact zero at once
    for _ in range(5):  # a gradient that would revive it
        _step(lam, trainer, [0.0, 0.0, -50.0, 0.0])
        assert lambda_iterates(trainer)["lam"][2] == 0 and lam.data().asnumpy()[2] == 0
    assert lambda_iterates(trainer)["lam"][0] > 0  # the others move as before
    states = trainer._updaters[0].states[0]  # noqa: SLF001
    assert states[0].asnumpy()[2] == 0  # the momentum too
    prune_lambdas(trainer, {"lam": np.array([True, False, False, False])})
    assert trainer.optimizer.pruned("lam").tolist() == [True, False, True, False]  # a prune only adds


def test_without_pruning_the_same_gradient_revives_it():
    lam, trainer = _trainer()
    _step(lam, trainer, [0.0, 0.0, 1.0, 0.0])
    for _ in range(5):
        _step(lam, trainer, [0.0, 0.0, -50.0, 0.0])
    assert lambda_iterates(trainer)["lam"][2] > 0


def test_the_clamp_keeps_the_look_ahead_non_negative():
    lam, trainer = _trainer(clamp=True)
    _step(lam, trainer, [0.0, 0.0, 1.0, 0.0])
    assert lambda_iterates(trainer)["lam"][2] == 0 and lam.data().asnumpy()[2] == 0  # not μv < 0
    free, free_trainer = _trainer(clamp=False)
    _step(free, free_trainer, [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(lambda_iterates(trainer)["lam"], lambda_iterates(free_trainer)["lam"])


def test_the_mask_and_the_clamp_are_pickled_with_the_optimizer():
    lam, trainer = _trainer(clamp=True)
    _step(lam, trainer, [0.0, 0.0, 1.0, 0.0])
    prune_lambdas(trainer, {"lam": np.array([False, False, True, False])})
    again = pickle.loads(pickle.dumps(trainer.optimizer))
    assert again.clamp and again.pruned("lam").tolist() == [False, False, True, False]


def test_a_pruning_search_only_adds_zeros_and_resumes_exactly(fmnist, tmp_path):  # noqa: F811
    """Pruned every search epoch with the clamp: the zero count never falls, the log says how
    many λ are pruned, and a run stopped by SIGTERM after its first search epoch resumes to the
    straight run's λ and architecture (the mask is in the checkpoint's λ Trainer state)."""
    args = [a for a in _micro(fmnist, "x") if not a.startswith("output_dir=")]
    args += ["search.epochs=5", "search.prune_every=1", "search.clamp=true", "search.gamma=0.3"]
    sigterm_resume_matches_straight(args, tmp_path)
    with open(os.path.join(tmp_path, "straight", "log.jsonl")) as f:
        records = [r for r in map(json.loads, f) if r.get("phase") == "search"]
    zeros = [r["zero_lambda"] for r in records]
    assert zeros == sorted(zeros) and zeros[-1] > 0
    assert [r["pruned_lambda"] for r in records] == zeros  # every zero is pruned at once (dead ops' too)
    assert all("support_flips" in r for r in records)


# ----------------------------------------------------------------------------- dead parts out of the graph

OPS4 = ("sep_conv_3x3", "max_pool_3x3", "avg_pool_3x3", "sep_conv_5x5")


def _closed_mask(levels, n_ops, frac, seed):
    """A prune's mask: λ zeroed at random, then every edge of a dead op with them (the closure)."""
    from dso_nas.spaces.dense.graph import block_edges, live_edges, num_lambda  # noqa: PLC0415 - local to this part
    mask = np.random.RandomState(seed).rand(num_lambda(levels, n_ops)) >= frac
    live = set(live_edges(mask, levels, n_ops))
    return np.array([e in live for e in block_edges(levels, n_ops)])


def test_the_live_plan_of_a_small_block():
    """M = 2, N = 2 (flat λ: level 2 rows [in, 1.0, 1.1] x 2, then 4 output edges). Keep 2.0 <- 1.1
    and 2.0 -> out, 1.0 -> out: op 1.1 feeds 2.0 only; 2.1 and its edges are gone; 1.0 reaches out."""
    from dso_nas.spaces.dense.graph import LevelPlan, live_plan, runs  # noqa: PLC0415
    keep = np.zeros(10, bool)
    keep[[2, 6, 8]] = True  # 1.1 -> 2.0 (row 0, source 2); 1.0 -> out; 2.0 -> out
    plan = live_plan(keep, 2, 2)
    assert plan.first == (0, 1) and plan.outputs == (0, 2)
    assert plan.levels == (LevelPlan(2, (0,), (2,)),)
    assert runs([0, 1, 2, 5, 7, 8]) == [(0, 3), (5, 6), (7, 9)]


@pytest.mark.parametrize("aggregation", ["fused", "per_edge"])
@pytest.mark.parametrize("backend", ["onednn", "reference"])
@pytest.mark.parametrize("frac", [0.0, 0.4, 0.8, 1.0])
def test_a_pruned_block_computes_what_the_whole_block_computes(aggregation, backend, frac):
    """With the pruned λ at zero (a prune's closed mask), the block that skips its dead ops and
    edges gives the whole block's output and the same gradients of every kept quantity, within
    the rounding of summing the same terms in other orders; the dead ops' weights get none."""
    from dso_nas.spaces.dense.block import SearchBlock  # noqa: PLC0415
    from dso_nas.spaces.dense.graph import live_ops, op_nodes  # noqa: PLC0415
    from tolerance import assert_close_rel, net_rtol  # noqa: PLC0415
    keep = _closed_mask(4, 4, frac, seed=int(frac * 10))
    rng = np.random.RandomState(1)
    lam = rng.uniform(0.2, 1.0, keep.size) * keep
    x = mx.nd.array(rng.normal(size=(2, 8, 6, 6)))
    results = []
    for drop in (False, True):
        block = SearchBlock(8, 4, OPS4, aggregation=aggregation, backend=backend, prefix="b_")
        block.initialize(mx.init.Xavier(rnd_type="gaussian"))
        mx.random.seed(3)
        for name, p in sorted(block.collect_params().items()):
            p.set_data(mx.nd.random.normal(0.2, 0.5, shape=p.shape) if "running_var" not in name
                       else mx.nd.ones(p.shape))
        block.lam.set_data(mx.nd.array(lam))
        if drop:
            assert block.drop_pruned(keep) == (not keep.all())
        block.hybridize(static_alloc=True)
        with mx.autograd.record():
            y = block(x)
            loss = (y * y).sum()
        loss.backward()
        grads = {n: p.grad().asnumpy() for n, p in block.collect_params().items() if p.grad_req != "null"}
        results.append((block, y.asnumpy(), grads))
    (whole, y_w, g_w), (pruned, y_p, g_p) = results
    rtol = net_rtol(whole, x.shape)
    assert_close_rel(y_p, y_w, rtol, "output")
    alive = live_ops(keep, 4, 4)
    dead = {f"b_l{lv}_{j}_" for lv, j in op_nodes(4, 4) if (lv, j) not in alive}
    assert {n for n in g_w if not any(n.startswith(d) for d in dead)} == set(g_p)  # dead ops: no gradient
    for name, grad in g_p.items():
        want = g_w[name] * keep if name == "b_lambda" else g_w[name]
        have = grad * keep if name == "b_lambda" else grad
        assert_close_rel(have, want, rtol, name, floor=1e-3 * float(np.abs(g_w[name]).max() or 1))


# ----------------------------------------------------------------------------- the stop at convergence


@pytest.mark.parametrize("until, epochs", [("converged", 2), ("epochs", 4)])
def test_the_search_stops_once_the_support_settles(fmnist, tmp_path, until, epochs):  # noqa: F811
    """γ = 0 never zeroes a λ, so the support is the same after every epoch: ``converged`` with
    patience 1 ends the search after its second epoch (the first one that left the support as it
    was), ``epochs`` runs the whole cap; every record says how many λ flipped."""
    from dso_nas.search.stop import converged  # noqa: PLC0415
    assert not converged("epochs", 10, 1) and converged("converged", 1, 1) and not converged("converged", 0, 1)
    out = str(tmp_path / until)
    rc, err = _cli(["search", *_micro(fmnist, out), "search.gamma=0", "search.epochs=4", f"search.until={until}",
                    "search.patience=1"])
    assert rc == 0, err[-1000:]
    with open(os.path.join(out, "log.jsonl")) as f:
        records = [r for r in map(json.loads, f) if r.get("phase") == "search"]
    assert len(records) == epochs
    assert [r["support_flips"] for r in records] == [0] * epochs and records[-1]["zero_lambda"] == 0


def _mobile_tiny():
    from test_mobile import TINY  # noqa: PLC0415 - the mobile tests' micro macro
    return TINY


@pytest.mark.parametrize("case", ["full-mac", "share-latency", "mobile-latency"])
def test_pruning_runs_in_every_scope_budget_and_space(fmnist, tmp_path, case):  # noqa: F811
    """A search pruned after every epoch, its dead parts out of the graph, in the full scope under
    the MAC budget, under the latency budget (its table model refreshed on the pruned net), and in
    the mobile space: zeros only grow and every zero is pruned at once."""
    from dso_nas.cli import main  # noqa: PLC0415
    out, table = str(tmp_path / "run"), str(tmp_path / "table")
    latency = ["search.budget=latency", "search.gamma0=0.01", "latency.input_size=8", "latency.runs=1",
               "latency.warmup=0", f"latency.table={table}"]
    common = ["search.prune_every=1", "search.epochs=3", "search.until=epochs"]
    if case == "full-mac":
        args = _micro(fmnist, out, "model.scope=full", "search.budget=mac", "search.gamma=0.3", *common)
    elif case == "share-latency":
        args = _micro(fmnist, out, "search.gamma=0.3", *latency, *common)
    else:
        args = _mobile_tiny() + [f"data.root={fmnist}", f"output_dir={out}", "data.limit=0", "train.batch_size=16",
                                 "pretrain.epochs=0", "search.gamma=3.0", "progress=false", "data.augment=false",
                                 *latency, *common]
    assert main(["search"] + args) == 0
    with open(os.path.join(out, "log.jsonl")) as f:
        records = [r for r in map(json.loads, f) if r.get("phase") == "search"]
    zeros = [r["zero_lambda"] for r in records]
    assert zeros == sorted(zeros) and zeros[-1] > 0
    assert [r["pruned_lambda"] for r in records] == zeros
