"""Golden micro search: the whole chain pinned bit for bit through refactors (issue 10).

``tests/golden/micro.yaml`` runs pre-train -> search -> derive -> retrain -> evaluate on the
real Fashion-MNIST pixels shipped in ``tests/golden/fashion_mnist`` in a fresh process with
one OpenMP thread and MXNet's synchronous ``NaiveEngine`` (the threaded engine with one
OpenMP thread still moved λ by ~3e-4 between two identical runs here; the naive engine
gives identical bytes run after run). ``tests/golden/expected/`` holds what the code gave
before the search-space / task / dataset registries were introduced: the architecture
file, the final λ, ``result.json`` and every epoch record of ``log.jsonl`` (wall-clock
fields and the run folder's path left out). A refactor must reproduce them exactly; a
deliberate change of behaviour regenerates them (and says so in its commit). The one change
so far: the registry renamed the space ``normal`` to ``dense`` (``normal`` is still read as
an alias), so the architecture file's ``space:`` line says ``dense``; every number stayed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
EXPECTED = os.path.join(GOLDEN, "expected")
WALL_CLOCK = ("time", "seconds", "retrain_seconds")


def _records(path):
    with open(path, encoding="utf-8") as f:
        return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK} for line in f if line.strip()]


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("golden") / "run")
    env = dict(os.environ, OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine")
    proc = subprocess.run([sys.executable, "-m", "dso_nas", "run", "--config", os.path.join(GOLDEN, "micro.yaml"),
                           f"output_dir={run}", f"data.root={os.path.join(GOLDEN, 'fashion_mnist')}"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


def test_architecture_file_is_identical(golden_run):
    with open(os.path.join(golden_run, "architecture.yaml"), encoding="utf-8") as f:
        got = [line for line in f.read().splitlines() if not line.startswith("  run: ")]
    with open(os.path.join(EXPECTED, "architecture.yaml"), encoding="utf-8") as f:
        assert got == f.read().splitlines()


def test_final_lambda_is_identical(golden_run):
    history = np.load(os.path.join(golden_run, "lambda_history.npz"))
    last = max(int(k.split("_")[0][len("epoch"):]) for k in history.files)
    expected = np.load(os.path.join(EXPECTED, "lambda_final.npz"))
    got = {k.split("_")[1]: history[k] for k in history.files if k.startswith(f"epoch{last}_")}
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_retrain_result_is_identical(golden_run):
    with open(os.path.join(golden_run, "retrain", "result.json"), encoding="utf-8") as f:
        got = {k: v for k, v in json.load(f).items() if k not in WALL_CLOCK}
    with open(os.path.join(EXPECTED, "result.json"), encoding="utf-8") as f:
        assert got == json.load(f)


def test_epoch_records_are_identical(golden_run):
    got = _records(os.path.join(golden_run, "log.jsonl")) + _records(os.path.join(golden_run, "retrain", "log.jsonl"))
    assert got == _records(os.path.join(EXPECTED, "log.jsonl"))
