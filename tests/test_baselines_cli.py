"""Table-1 baselines through the same retrain path; retrain resume; the make targets on tiny CIFAR."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from datafiles import write_cifar_py, write_idx
from dso_nas.run import checkpoint as ckpt
from dso_nas.cli import main
from dso_nas.spaces.archfile import load_architecture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = ["model.in_channels=1", "model.stem_channels=4", "model.stages=2", "model.blocks=[1, 1]",
              "model.channels=[4, 8]", "model.levels=2", "model.ops=[sep_conv_3x3, max_pool_3x3]"]


def _baseline(kind, out, *extra):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "make_baseline.py"), "--kind", kind, "--out", out,
           "--seed", "3"] + list(extra) + TINY_MODEL
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("kind, row", [("random-share", "random-share"), ("random-full", "random-full"),
                                       ("full", "full network")])
def test_baseline_files_retrain_like_any_other(kind, row, tmp_path, capsys):
    arch_path = str(tmp_path / f"{kind}.yaml")
    proc = _baseline(kind, arch_path, "--keep-rate", "0.6")
    assert proc.returncode == 0, proc.stderr
    arch = load_architecture(arch_path)
    assert arch.scope == ("full" if kind == "random-full" else "share")
    write_idx(str(tmp_path / "fm"), n_train=32, n_test=16, seed=1)
    out = str(tmp_path / "run")
    args = ["retrain", "--arch", arch_path, f"output_dir={out}", "data.name=fashion_mnist",
            f"data.root={tmp_path / 'fm'}", "retrain.epochs=1", "retrain.batch_size=16", "retrain.target_params=8000",
            "retrain.aux_weight=0", "progress=false"] + TINY_MODEL
    assert main(args) == 0
    result = json.load(open(os.path.join(out, "result.json")))
    assert result["paper_row"] == row
    assert result["params"] <= 8000
    capsys.readouterr()
    assert main(["report", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paper_row"] == row


def test_random_keep_rate_from_searched_arch(tmp_path):
    full = str(tmp_path / "full.yaml")
    assert _baseline("full", full).returncode == 0
    rnd = str(tmp_path / "rnd.yaml")
    assert _baseline("random-share", rnd, "--like", full).returncode == 0  # keep rate 1.0 → everything kept
    a, b = load_architecture(full), load_architecture(rnd)
    assert a.cells == b.cells


def test_random_like_keeps_the_searched_edge_counts():
    from dso_nas.config import load_config
    from dso_nas.spaces import get_space
    from dso_nas.spaces.dense.graph import num_lambda

    cfg = load_config(None, TINY_MODEL + ["model.scope=full"])
    space = get_space("dense")
    size = num_lambda(2, 2)
    searched = space.baseline("random-full", cfg, keep_rate=0.7, seed=11)
    kept = [int(c.mask(2, 2).sum()) for c in searched.block_cells()]
    for seed in range(5):
        rnd = space.baseline("random-full", cfg, keep_rate=0.0, seed=seed, like=searched)
        assert rnd.meta["edges"] == kept                              # drawn: exactly the searched counts
        assert all(int(c.mask(2, 2).sum()) <= k for c, k in zip(rnd.block_cells(), kept))  # dead ops may go
        assert rnd.meta["keep_rate"] == pytest.approx(sum(kept) / (size * len(kept)))
    share = space.baseline("random-share", cfg, keep_rate=0.0, seed=1, like=searched)
    assert share.meta["edges"] == [int(round(sum(kept) / len(kept)))]
    draws = {tuple(space.baseline("random-full", cfg, keep_rate=0, seed=s, like=searched).cells[0].mask(2, 2))
             for s in range(8)}
    assert len(draws) > 1                                               # the seed draws the edges


def test_baseline_tool_bad_input(tmp_path):
    proc = _baseline("random-share", str(tmp_path / "x.yaml"), "--like", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_retrain_killed_and_resumed_equals_uninterrupted(tmp_path):
    write_idx(str(tmp_path / "fm"), n_train=48, n_test=16, seed=2)
    arch_path = str(tmp_path / "full.yaml")
    assert _baseline("full", arch_path).returncode == 0
    common = ["data.name=fashion_mnist", f"data.root={tmp_path / 'fm'}", "retrain.epochs=8", "retrain.batch_size=16",
              "retrain.target_params=0", "retrain.aux_weight=0", "retrain.drop_path=0.3", "retrain.dropout=0.3",
              "progress=false"] + TINY_MODEL
    # Every part in its own one-thread process on the synchronous engine (bitwise reproducible).
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine")
    cli = [sys.executable, "-m", "dso_nas", "retrain"]
    straight = str(tmp_path / "straight")
    done = subprocess.run(cli + ["--arch", arch_path, f"output_dir={straight}"] + common, cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1000:]
    cut = str(tmp_path / "cut")
    proc = subprocess.Popen(cli + ["--arch", arch_path, f"output_dir={cut}"] + common, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_checkpoint = os.path.join(cut, "retrain.ckpt")
    while not os.path.exists(first_checkpoint):
        assert proc.poll() is None, proc.stderr.read().decode()[-1000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not ckpt.load_checkpoint(os.path.join(cut, "retrain.ckpt"))["done"], "finished before the kill"
    done = subprocess.run(cli + ["--resume", cut], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1000:]
    a = json.load(open(os.path.join(straight, "result.json")))
    b = json.load(open(os.path.join(cut, "result.json")))
    # Retraining resumes to float rounding (~1e-7 in the first resumed epoch, grown to ~1e-5 by
    # the end), not bit for bit; losing the optimizer state on resume differs by far more (checked
    # by hand). The search resumes bit for bit: test_pipeline.
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-3)
    wa = ckpt.load_checkpoint(os.path.join(straight, "retrain.ckpt"))["net"]
    wb = ckpt.load_checkpoint(os.path.join(cut, "retrain.ckpt"))["net"]
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, ".venv", "bin", "dso-nas")) or shutil.which("make") is None,
                    reason="needs the Makefile's .venv (make test creates it)")
def test_make_cifar_search_on_tiny_real_format_files(tmp_path):
    write_cifar_py(str(tmp_path / "cifar"), n_train_per_batch=8, n_test=8, seed=0)
    out = tmp_path / "run"
    overrides = (f"output_dir={out} data.limit=32 pretrain.epochs=1 search.epochs=1 train.batch_size=16 "
                 "model.blocks=[1,1,1] model.channels=[8,16,32] model.stem_channels=8 progress=false")
    proc = subprocess.run(["make", "-s", "cifar-search", f"CIFAR_ROOT={tmp_path / 'cifar'}", "SCOPE=share",
                           f"ARGS={overrides}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(open(out / "config.yaml"))
    assert cfg["model"]["scope"] == "share" and cfg["model"]["levels"] == 4 and cfg["search"]["gamma"] == 0.001
    assert load_architecture(str(out / "architecture.yaml")).scope == "share"
