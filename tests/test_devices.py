"""The ``context`` key (several CPU contexts for tests, several GPUs) and the global batch."""
import pytest

from dso_nas.config import load_config
from dso_nas.engine.devices import parse_context
from dso_nas.errors import ConfigError
from dso_nas.run.parts import parts_of


def test_context_key():
    assert [c.device_id for c in parse_context("cpu:0,1")] == [0, 1]
    assert [(c.device_type, c.device_id) for c in parse_context("gpu")] == [("gpu", 0)]
    assert [c.device_id for c in parse_context("gpu:0,3")] == [0, 3]
    for bad in ("cpu:a", "gpu:0,0", "tpu", "cpu:"):
        with pytest.raises(ConfigError, match="context"):
            parse_context(bad)


def test_global_batch_must_split_evenly_over_the_contexts():
    with pytest.raises(ConfigError, match="train.batch_size=15 is the global batch .* 2 context"):
        parts_of(load_config(None, ["context=cpu:0,1", "train.batch_size=15"]))
    with pytest.raises(ConfigError, match="retrain.batch_size=9"):
        parts_of(load_config(None, ["context=cpu:0,1", "train.batch_size=16", "retrain.batch_size=9"]))
    assert len(parts_of(load_config(None, ["context=cpu:0,1", "train.batch_size=16"])).ctxs) == 2
