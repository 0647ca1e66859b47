"""Tests of the APG-NAG optimizer of the scaling factors λ (TPAMI §3.3, Eqs. 14-16)."""
from typing import Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon, nd
from sklearn.linear_model import Lasso

from dso_nas.search import APGNAG, lambda_iterates, soft_threshold_nonneg

F64 = "float64"


# ---------------------------------------------------------------------------- helpers
def make_param(name: str, value: np.ndarray, dtype: str = F64) -> gluon.Parameter:
    """An initialised Gluon parameter holding ``value``."""
    p = gluon.Parameter(name, shape=value.shape, dtype=dtype)
    p.initialize(init=mx.init.Constant(0), ctx=mx.cpu())
    p.set_data(nd.array(value, dtype=dtype))
    return p


def step_with_grads(trainer: gluon.Trainer, params: Sequence[gluon.Parameter],
                    grads: Sequence[np.ndarray]) -> None:
    """One Trainer step in which the gradient of each parameter is exactly ``grads[i]``."""
    coeffs = [nd.array(g, dtype=p.dtype) for p, g in zip(params, grads)]
    with autograd.record():
        loss = nd.add_n(*[(p.data() * c).sum() for p, c in zip(params, coeffs)])
    loss.backward()
    trainer.step(1)


def reference_steps(lam0: np.ndarray, grads: Sequence[np.ndarray], lr: float,
                    thr: np.ndarray, schedule: str = "constant",
                    momentum: float = 0.9) -> Tuple[np.ndarray, np.ndarray]:
    """NumPy transcription of Eqs. 14-16; returns ``(λ′, iterate)`` after all steps."""
    lam, v, it = lam0.astype(np.float64).copy(), np.zeros_like(lam0, dtype=np.float64), None
    for t, g in enumerate(grads, start=1):
        if schedule == "constant":
            mu_prev = mu_next = momentum
        else:
            mu_prev, mu_next = max(0.0, (t - 2) / (t + 1)), (t - 1) / (t + 2)
        z = lam - lr * g
        it = np.maximum(0.0, z - thr)
        v = it - lam + mu_prev * v
        lam = it + mu_next * v
    return lam, it


# -------------------------------------------------------------------- soft threshold
def test_soft_threshold_values():
    z = nd.array([1.0, 0.3, 0.1, 0.05, 0.0, -0.2, -5.0], dtype=F64)
    out = soft_threshold_nonneg(z, 0.1).asnumpy()
    np.testing.assert_allclose(out, [0.9, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0], rtol=0, atol=1e-15)
    assert np.all(out[2:] == 0.0)  # exact zeros at/below the threshold and for negatives
    per_entry = soft_threshold_nonneg(nd.array([1.0, 1.0, 1.0], dtype=F64),
                                      nd.array([0.0, 0.5, 2.0], dtype=F64)).asnumpy()
    np.testing.assert_array_equal(per_entry, [1.0, 0.5, 0.0])


def test_registered_and_created_by_name():
    opt = mx.optimizer.create("apgnag", learning_rate=0.1, gamma=0.01)
    assert isinstance(opt, APGNAG)
    assert opt.momentum == 0.9 and opt.wd == 0.0 and opt.aggregate_num == 0
    with pytest.raises(ValueError):
        APGNAG(gamma=-1.0)
    with pytest.raises(ValueError):
        APGNAG(gamma=0.1, momentum=1.0)
    with pytest.raises(ValueError):
        APGNAG(gamma=0.1, momentum_schedule="cosine")


# ---------------------------------------------------------------- hand-computed steps
def test_two_step_update_matches_hand_computation():
    # η = 0.1, γ = 0.5 -> threshold 0.05; μ = 0.9.
    opt = APGNAG(learning_rate=0.1, gamma=0.5, momentum=0.9)
    lam = nd.array([1.0, 0.5, 0.02, 0.3], dtype=F64)
    state = opt.create_state_multi_precision(0, lam)
    opt.update_multi_precision(0, lam, nd.array([0.5, -1.0, 0.0, 4.0], dtype=F64), state)
    # z = [0.95, 0.6, 0.02, -0.1]; S = [0.9, 0.55, 0, 0]; v = [-0.1, 0.05, -0.02, -0.3]
    np.testing.assert_allclose(opt.iterate("0").asnumpy(), [0.9, 0.55, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(state[0].asnumpy(), [-0.1, 0.05, -0.02, -0.3], atol=1e-12)
    np.testing.assert_allclose(lam.asnumpy(), [0.81, 0.595, -0.018, -0.27], atol=1e-12)
    # Iterate exactly 0 while the look-ahead λ′ is not (it carries momentum).
    assert opt.iterate("0").asnumpy()[2] == 0.0 and lam.asnumpy()[2] < 0.0
    opt.update_multi_precision(0, lam, nd.array([0.0, 0.5, -1.0, 0.0], dtype=F64), state)
    # z = [0.81, 0.545, 0.082, -0.27]; S = [0.76, 0.495, 0.032, 0]
    # v = [-0.14, -0.055, 0.032, 0]; λ′ = [0.634, 0.4455, 0.0608, 0]
    np.testing.assert_allclose(opt.iterate("0").asnumpy(), [0.76, 0.495, 0.032, 0.0], atol=1e-12)
    np.testing.assert_allclose(state[0].asnumpy(), [-0.14, -0.055, 0.032, 0.0], atol=1e-12)
    np.testing.assert_allclose(lam.asnumpy(), [0.634, 0.4455, 0.0608, 0.0], atol=1e-12)


def test_rescale_clip_and_weight_decay_enter_the_gradient():
    lam0 = np.array([1.0, 0.5, 2.0])
    g = np.array([4.0, -1.0, 0.2])
    opt = APGNAG(learning_rate=0.1, gamma=0.2, momentum=0.5, rescale_grad=0.5,
                 clip_gradient=1.0, wd=0.1)
    lam = nd.array(lam0, dtype=F64)
    opt.update(0, lam, nd.array(g, dtype=F64), opt.create_state(0, lam))
    g_eff = np.clip(g * 0.5, -1.0, 1.0) + 0.1 * lam0
    expected, it = reference_steps(lam0, [g_eff], 0.1, 0.1 * 0.2, momentum=0.5)
    np.testing.assert_allclose(lam.asnumpy(), expected, atol=1e-12)
    np.testing.assert_allclose(opt.iterate("0").asnumpy(), it, atol=1e-12)


def test_lr_scheduler_sets_the_step_and_threshold():
    sched = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.2)
    opt = APGNAG(gamma=0.1, momentum=0.0, lr_scheduler=sched)
    lam = nd.array([1.0, 0.1], dtype=F64)
    state = opt.create_state(0, lam)
    for _ in range(2):
        opt.update(0, lam, nd.array([1.0, 0.0], dtype=F64), state)
    ref_sched = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.2)
    lrs = [ref_sched(1), ref_sched(2)]
    assert lrs[0] != lrs[1]
    expected = np.array([1.0, 0.1])
    for lr in lrs:
        expected = np.maximum(0.0, expected - lr * np.array([1.0, 0.0]) - lr * 0.1)
    np.testing.assert_allclose(lam.asnumpy(), expected, atol=1e-12)


# ------------------------------------------------------------------ under a Trainer
SHAPES = [(3,), (2, 2), (5,)]


def _multi_param_setup(seed: int = 0) -> Tuple[List[gluon.Parameter], List[List[np.ndarray]]]:
    rng = np.random.RandomState(seed)
    params = [make_param(f"lam{i}", rng.uniform(0.0, 1.0, size=s)) for i, s in enumerate(SHAPES)]
    grads = [[rng.randn(*s) for s in SHAPES] for _ in range(4)]
    return params, grads


@pytest.mark.parametrize("aggregate_num", [0, 2])
@pytest.mark.parametrize("schedule", ["constant", "apg"])
def test_trainer_several_params_with_and_without_aggregation(aggregate_num, schedule):
    params, grads = _multi_param_setup()
    lam0 = [p.data().asnumpy() for p in params]
    opt = APGNAG(learning_rate=0.1, gamma=0.3, momentum=0.8, momentum_schedule=schedule,
                 aggregate_num=aggregate_num)
    calls: List[object] = []
    original = opt.update_multi_precision

    def spy(index, weight, grad, state):
        calls.append(index)
        original(index, weight, grad, state)

    opt.update_multi_precision = spy
    trainer = gluon.Trainer(params, opt)
    for step_grads in grads:
        step_with_grads(trainer, params, step_grads)
    if aggregate_num:
        assert trainer._updaters[0].aggregate_updates
        assert [len(c) for c in calls[:2]] == [2, 1]
    else:
        assert all(isinstance(c, int) for c in calls) and len(calls) == 3 * len(grads)
    iterates = lambda_iterates(trainer)
    for i, p in enumerate(params):
        expected, it = reference_steps(lam0[i], [g[i] for g in grads], 0.1, 0.1 * 0.3,
                                       schedule=schedule, momentum=0.8)
        np.testing.assert_allclose(p.data().asnumpy(), expected, atol=1e-12)
        np.testing.assert_allclose(iterates[p.name], it, atol=1e-12)
        assert not np.allclose(expected, lam0[i])


def test_trainer_by_name_and_iterates_fall_back_to_weight():
    p = make_param("lam", np.array([0.5, 0.2]))
    trainer = gluon.Trainer([p], "apgnag", {"learning_rate": 0.1, "momentum": 0.9, "gamma": 0.1})
    assert isinstance(trainer.optimizer, APGNAG)
    np.testing.assert_array_equal(lambda_iterates(trainer)["lam"], [0.5, 0.2])
    with pytest.raises(KeyError):
        trainer.optimizer.iterate("lam")
    step_with_grads(trainer, [p], [np.array([0.0, 0.0])])
    np.testing.assert_allclose(lambda_iterates(trainer)["lam"], [0.49, 0.19], atol=1e-12)


def test_vanishing_lambdas_reach_exact_zero_in_iterate():
    # min ½‖λ - c‖² + γ‖λ‖₁, λ >= 0  ->  λ* = max(0, c - γ) = [0.9, 0, 0, 0.2].
    target = np.array([1.0, 0.02, -0.5, 0.3])
    p = make_param("lam", np.ones(4))
    trainer = gluon.Trainer([p], "apgnag", {"learning_rate": 0.5, "momentum": 0.9, "gamma": 0.1})
    c = nd.array(target, dtype=F64)
    for _ in range(150):
        with autograd.record():
            loss = 0.5 * ((p.data() - c) ** 2).sum()
        loss.backward()
        trainer.step(1)
    it = lambda_iterates(trainer)["lam"]
    assert it[1] == 0.0 and it[2] == 0.0
    np.testing.assert_allclose(it, [0.9, 0.0, 0.0, 0.2], atol=1e-9)


def test_weight_trainer_nag_is_untouched_by_gamma():
    lam = make_param("lam", np.ones(3))
    w = make_param("w", np.array([0.5, -1.0, 2.0]))
    x = nd.array([1.0, 2.0, 3.0], dtype=F64)
    lam_trainer = gluon.Trainer([lam], "apgnag",
                                {"learning_rate": 0.1, "momentum": 0.9, "gamma": 100.0})
    w_trainer = gluon.Trainer([w], "nag", {"learning_rate": 0.1, "momentum": 0.9})
    with pytest.raises(ValueError):
        lam_trainer.optimizer.set_gamma_scale("w", 5.0)  # not a parameter of the λ trainer
    with autograd.record():
        loss = (lam.data() * w.data() * x).sum()
    loss.backward()
    lam_trainer.step(1)
    w_trainer.step(1)
    # NAG, first step: mom = g; w -= lr (g + μ mom) = 1.9 lr g, with g = λ x = x.
    np.testing.assert_allclose(w.data().asnumpy(), [0.5, -1.0, 2.0] - 0.19 * x.asnumpy(),
                               atol=1e-12)
    np.testing.assert_array_equal(lambda_iterates(lam_trainer)["lam"], np.zeros(3))


# -------------------------------------------------------------------- γ multipliers
def test_set_gamma_scale_changes_threshold_per_entry():
    p = make_param("lam", np.ones(4))
    trainer = gluon.Trainer([p], "apgnag", {"learning_rate": 0.1, "momentum": 0.0, "gamma": 1.0})
    opt = trainer.optimizer
    step_with_grads(trainer, [p], [np.zeros(4)])  # default scale 1: threshold 0.1
    np.testing.assert_allclose(lambda_iterates(trainer)["lam"], [0.9] * 4, atol=1e-12)
    opt.set_gamma_scale("lam", np.array([0.0, 1.0, 2.0, 20.0]))  # no Trainer rebuild
    step_with_grads(trainer, [p], [np.zeros(4)])
    np.testing.assert_allclose(lambda_iterates(trainer)["lam"], [0.9, 0.8, 0.7, 0.0], atol=1e-12)
    opt.set_gamma_scale("lam", 0.5)  # a scalar multiplier
    step_with_grads(trainer, [p], [np.zeros(4)])
    np.testing.assert_allclose(lambda_iterates(trainer)["lam"], [0.85, 0.75, 0.65, 0.0],
                               atol=1e-12)
    np.testing.assert_array_equal(opt.gamma_scale("lam"), [0.5] * 4)
    with pytest.raises(ValueError):
        opt.set_gamma_scale("lam", np.ones(3))
    with pytest.raises(ValueError):
        opt.set_gamma_scale("lam", -1.0)


# ------------------------------------------------------------------- save and load
def _run(trainer: gluon.Trainer, params: Sequence[gluon.Parameter],
         grads: Sequence[Sequence[np.ndarray]]) -> None:
    for step_grads in grads:
        step_with_grads(trainer, params, step_grads)


def _snapshot(trainer: gluon.Trainer, params: Sequence[gluon.Parameter]) -> Dict[str, np.ndarray]:
    snap = {f"w:{p.name}": p.data().asnumpy() for p in params}
    snap.update({f"it:{k}": v for k, v in lambda_iterates(trainer).items()})
    return snap


@pytest.mark.parametrize("aggregate_num", [0, 2])
def test_save_load_states_continues_bit_identically(tmp_path, aggregate_num):
    hyper = {"learning_rate": 0.05, "momentum": 0.9, "gamma": 0.4,
             "momentum_schedule": "apg", "aggregate_num": aggregate_num}
    params_a, grads = _multi_param_setup(seed=1)
    more = [[g * -0.7 for g in step] for step in grads]
    trainer_a = gluon.Trainer(params_a, "apgnag", hyper)
    trainer_a.optimizer.set_gamma_scale("lam1", np.array([[0.0, 1.0], [2.0, 3.0]]))
    _run(trainer_a, params_a, grads)
    trainer_a.save_states(str(tmp_path / "lam.states"))
    saved = {p.name: p.data().asnumpy() for p in params_a}
    at_save = _snapshot(trainer_a, params_a)
    _run(trainer_a, params_a, more)

    params_b = [make_param(p.name, saved[p.name]) for p in params_a]
    trainer_b = gluon.Trainer(params_b, "apgnag", dict(hyper, gamma=0.0, momentum=0.1))
    trainer_b.load_states(str(tmp_path / "lam.states"))
    opt_b = trainer_b.optimizer
    assert opt_b.gamma == 0.4 and opt_b.momentum_schedule == "apg"
    np.testing.assert_array_equal(opt_b.gamma_scale("lam1"), [[0.0, 1.0], [2.0, 3.0]])
    for key, value in _snapshot(trainer_b, params_b).items():  # iterates restored before a step
        np.testing.assert_array_equal(value, at_save[key])
    _run(trainer_b, params_b, more)
    after_a, after_b = _snapshot(trainer_a, params_a), _snapshot(trainer_b, params_b)
    assert after_a.keys() == after_b.keys()
    for key in after_a:
        np.testing.assert_array_equal(after_b[key], after_a[key])


# ------------------------------------------------------------------- mixed precision
def test_float16_weights_with_multi_precision():
    p = make_param("lam", np.array([1.0, 0.02]), dtype="float16")
    trainer = gluon.Trainer([p], "apgnag", {"learning_rate": 0.1, "momentum": 0.9,
                                           "gamma": 0.5, "multi_precision": True})
    step_with_grads(trainer, [p], [np.array([0.5, 0.0])])
    it = trainer.optimizer.iterate("lam")
    assert it.dtype == np.float32
    np.testing.assert_allclose(it.asnumpy(), [0.9, 0.0], atol=1e-6)
    np.testing.assert_allclose(p.data().asnumpy(), [0.81, -0.018], atol=1e-3)


# ------------------------------------------------------------------ lasso reference
@pytest.mark.parametrize("schedule", ["constant", "apg"])
def test_converges_to_sklearn_positive_lasso(schedule):
    rng = np.random.RandomState(0)
    n, d, gamma = 200, 30, 0.05
    a = rng.randn(n, d)
    x_true = np.zeros(d)
    x_true[rng.choice(d, 6, replace=False)] = rng.uniform(0.5, 2.0, 6)
    b = a @ x_true + 0.1 * rng.randn(n)
    ref = Lasso(alpha=gamma, positive=True, fit_intercept=False, tol=1e-12,
                max_iter=100000).fit(a, b).coef_
    lipschitz = np.linalg.norm(a, 2) ** 2 / n  # of ∇ ½‖Ax - b‖²/n

    x = make_param("x", np.ones(d))
    trainer = gluon.Trainer([x], "apgnag", {"learning_rate": 1.0 / lipschitz, "momentum": 0.9,
                                           "gamma": gamma, "momentum_schedule": schedule})
    a_nd, b_nd = nd.array(a, dtype=F64), nd.array(b, dtype=F64)
    for _ in range(300):
        with autograd.record():
            r = nd.dot(a_nd, x.data()) - b_nd
            loss = (r * r).sum() / (2 * n)
        loss.backward()
        trainer.step(1)
    est = lambda_iterates(trainer)["x"]
    assert 0 < np.count_nonzero(ref) < d
    np.testing.assert_array_equal(np.flatnonzero(est), np.flatnonzero(ref))
    assert np.max(np.abs(est - ref)) <= 1e-6
