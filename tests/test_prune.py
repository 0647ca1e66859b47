"""Permanent pruning and the clamp of λ′ (issue 26): a pruned λ stays exactly zero in the
iterate, the momentum and the forward pass; a clamped λ′ is never negative; the mask lives in
the checkpoint, so a pruning search killed mid-run resumes to the same λ."""
import json
import os
import pickle

import mxnet as mx
import numpy as np
from mxnet import gluon

from dso_nas.search.apgnag import APGNAG, lambda_iterates
from dso_nas.search.pruning import prune_lambdas
from test_pipeline import _micro, fmnist, sigterm_resume_matches_straight  # noqa: F401 - fmnist is a fixture


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
