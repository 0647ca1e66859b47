"""Several contexts and several workers (issue 14, first part): the context key, the global
batch, ``dso-nas launch`` on loopback, and a two-worker dist_sync search equal to one process
with two contexts (the same per-device BatchNorm halves, the same summed gradients)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from datafiles import write_idx
from dso_nas.cli import main
from dso_nas.config import load_config
from dso_nas.engine.devices import parse_context
from dso_nas.errors import ConfigError
from dso_nas.run import checkpoint as ckpt
from dso_nas.run.build import parts_of
from test_pipeline import MICRO, _cells, _final_lambdas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fmnist")
    write_idx(str(folder), n_train=64, n_test=32, seed=0)
    return str(folder)


def test_context_key():
    assert [c.device_id for c in parse_context("cpu:0,1")] == [0, 1]
    assert [c.device_type for c in parse_context("gpu")] == ["gpu"]
    for bad in ("cpu:a", "gpu:0,0", "tpu", "cpu:"):
        with pytest.raises(ConfigError, match="context"):
            parse_context(bad)


def test_global_batch_must_split_evenly():
    with pytest.raises(ConfigError, match="train.batch_size=15 is the global batch .* 2 context"):
        parts_of(load_config(None, ["context=cpu:0,1", "train.batch_size=15"]))
    parts_of(load_config(None, ["context=cpu:0,1", "train.batch_size=16", "retrain.batch_size=64"]))


def test_dist_kvstore_outside_a_launch_is_one_line(fmnist, tmp_path, capsys):
    env = os.environ.pop("DMLC_ROLE", None)
    try:
        assert main(["search", *MICRO, f"data.root={fmnist}", f"output_dir={tmp_path / 'o'}",
                     "train.kvstore=dist_sync"]) == 2
    finally:
        if env is not None:
            os.environ["DMLC_ROLE"] = env
    err = capsys.readouterr().err
    assert "dso-nas launch" in err and "Traceback" not in err


def _run(args, timeout=240):
    done = subprocess.run([sys.executable, "-m", "dso_nas", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _weights(run_dir):
    state = ckpt.load_checkpoint(os.path.join(run_dir, "search.ckpt"))
    return state["net"]


def test_two_workers_compute_what_one_process_with_two_contexts_computes(fmnist, tmp_path):
    micro = [*MICRO, f"data.root={fmnist}", "search.epochs=2", "data.cutout=0"]
    one, dist = str(tmp_path / "one"), str(tmp_path / "dist")
    _run(["search", *micro, f"output_dir={one}", "context=cpu:0,1"])
    _run(["launch", "--workers", "2", "--", sys.executable, "-m", "dso_nas", "search", *micro,
          f"output_dir={dist}", "train.kvstore=dist_sync"])
    assert _cells(dist) == _cells(one)
    for a, b in zip(_final_lambdas(dist), _final_lambdas(one)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    w_one, w_dist = _weights(one), _weights(dist)
    assert sorted(w_one) == sorted(w_dist)
    for name in w_one:
        np.testing.assert_allclose(w_dist[name], w_one[name], rtol=1e-4, atol=1e-5, err_msg=name)
    with open(os.path.join(one, "log.jsonl")) as f, open(os.path.join(dist, "log.jsonl")) as g:
        assert len(f.readlines()) == len(g.readlines())  # rank 0 alone wrote the epoch records


def test_a_failed_worker_stops_the_others(tmp_path):
    lock = tmp_path / "first"
    script = f"import os, sys, time\ntry:\n    os.mkdir({str(lock)!r})\n    sys.exit(3)\nexcept FileExistsError:\n" \
             f"    time.sleep(120)\n"
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "dso_nas", "launch", "--workers", "2", "--", sys.executable,
                           "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=90)
    assert done.returncode == 3 and time.time() - start < 60
    assert "worker" in done.stderr and "exited with status 3" in done.stderr


def test_a_killed_distributed_search_resumes_to_the_same_result(fmnist, tmp_path):
    micro = [*MICRO, f"data.root={fmnist}", "search.epochs=20", "train.kvstore=dist_sync"]
    worker = [sys.executable, "-m", "dso_nas", "search"]
    launch = [sys.executable, "-m", "dso_nas", "launch", "--workers", "2", "--"]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    _run(["launch", "--workers", "2", "--", *worker, *micro, f"output_dir={straight}"])
    proc = subprocess.Popen([*launch, *worker, *micro, f"output_dir={killed}"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = os.path.join(killed, "log.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(log) and '"phase": "search"' in open(log).read()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 2, "the run finished before the signal: nothing was tested"
    assert b"--resume" in proc.stderr.read()
    _run(["launch", "--workers", "2", "--", *worker, "--resume", killed])
    assert _cells(killed) == _cells(straight)
    for a, b in zip(_final_lambdas(killed), _final_lambdas(straight)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
