"""The retraining learning-rate schedules (``retrain.schedule``) as a registry: every kind the
config allows is registered, and each gives the rates of its formula."""
import math
from types import SimpleNamespace

import pytest

from dso_nas.config import load_config
from dso_nas.config.defaults import CHOICES
from dso_nas.engine.schedules import SCHEDULES, retrain_schedule, sgdr_schedule
from dso_nas.errors import ConfigError


def _retrain(**kw):
    base = dict(epochs=10, lr_max=0.05, lr_min=0.001, t0=10, t_mul=2)
    return SimpleNamespace(**{**base, **kw})


def test_registry_holds_every_kind_the_config_allows():
    assert SCHEDULES.names() == ("sgdr", "linear", "poly")
    assert tuple(CHOICES["retrain.schedule"]()) == SCHEDULES.names()
    assert load_config(None, []).retrain.schedule in SCHEDULES
    for kind in SCHEDULES:
        assert load_config(None, [f"retrain.schedule={kind}"]).retrain.schedule == kind
    with pytest.raises(ConfigError, match="retrain.schedule"):
        load_config(None, ["retrain.schedule=step"])


def _cosine(t, n, lr_max=0.05, lr_min=0.001):
    """gluoncv's cosine rate at iteration ``t`` of a period of ``n`` iterations."""
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * t / (n - 1))) / 2


def test_sgdr_restarts_at_every_period():
    # epochs 7 with t0=1, t_mul=2: periods of 1, 2, 4 epochs = 4, 8, 16 iterations (4 per epoch)
    r = _retrain(schedule="sgdr", epochs=7, t0=1, t_mul=2)
    sched = retrain_schedule(r, iters_per_epoch=4)
    expected = {0: 0.05, 3: 0.001, 4: 0.05, 8: _cosine(4, 8), 11: 0.001, 12: 0.05, 20: _cosine(8, 16),
                27: 0.001, 100: 0.001}
    for it, lr in expected.items():
        assert sched(it) == pytest.approx(lr, rel=1e-9, abs=1e-12), it
    direct = sgdr_schedule(7, 4, 0.05, 0.001, 1, 2)
    assert [direct(i) for i in range(28)] == [sched(i) for i in range(28)]


def test_sgdr_paper_periods_cover_the_epochs():
    # the paper's 630 epochs = 10 + 20 + 40 + 80 + 160 + 320: a restart at each boundary
    sched = retrain_schedule(_retrain(schedule="sgdr", epochs=630), iters_per_epoch=1)
    for start in (0, 10, 30, 70, 150, 310):
        assert sched(start) == pytest.approx(0.05)
        assert sched(start - 1 if start else 0) == pytest.approx(0.001 if start else 0.05)
    assert sched(629) == pytest.approx(0.001)


def test_linear_decay():
    sched = retrain_schedule(_retrain(schedule="linear", epochs=10, lr_max=0.5, lr_min=0.0), iters_per_epoch=5)
    n = 10 * 5 - 1
    for it in (0, 1, 20, 48, 49):
        assert sched(it) == pytest.approx(0.5 * (1 - it / n), rel=1e-9, abs=1e-12), it


def test_poly_decay():
    sched = retrain_schedule(_retrain(schedule="poly", epochs=10, lr_max=0.01, lr_min=1e-4), iters_per_epoch=5)
    n = 10 * 5 - 1
    for it in (0, 10, 30, 49):
        assert sched(it) == pytest.approx(1e-4 + (0.01 - 1e-4) * (1 - it / n) ** 0.9, rel=1e-9, abs=1e-12), it
