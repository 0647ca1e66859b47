"""`dso-nas export` (issue 15): MXNet symbol/params and ONNX files of a derived network, checked
against the Gluon net; a checkpoint's weights exported; bad input in one line; `info --latency`."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import onnx
import onnxruntime  # pinned in requirements-dev.txt: these tests run in CI, never skipped
import pytest

from dso_nas.cli import main
from dso_nas.config import load_config
from dso_nas.errors import UserError
from dso_nas.run import checkpoint as ckpt
from dso_nas.run.nets import build_derived, inference_config, retrain_arch
from dso_nas.run.init import initialize
from dso_nas.run.parts import parts_of
from dso_nas.run.export import export, measure_exported_latency
from dso_nas.run.payloads import RetrainPayload, save_payload
from dso_nas.spaces.archfile import load_architecture, save_architecture
from dso_nas.spaces.dense.arch import Layout
from dso_nas.spaces.dense.baselines import random_architecture
from tolerance import assert_close_rel, net_rtol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Fashion-MNIST (1 x 28 x 28, no data read), the arch's width as it is.
FM = ["data.name=fashion_mnist", "model.in_channels=1", "retrain.target_params=0"]
SHAPE = (1, 1, 28, 28)
pytestmark = pytest.mark.filterwarnings("ignore:Cannot decide type:UserWarning")  # SymbolBlock.imports


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
    layout = Layout(stem="cifar", in_channels=1, stem_channels=4, channels=(4, 8), blocks=(1, 1), levels=2,
                    ops=("sep_conv_3x3", "max_pool_3x3"))
    path = str(tmp_path_factory.mktemp("arch") / "architecture.yaml")
    save_architecture(random_architecture(layout, scope="full", keep_rate=0.6, seed=1), path)
    return path


@pytest.fixture(scope="module")
def exported(arch_file, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("export"))
    return out, export(arch_file, None, None, FM, out)


def _batch(seed=3):
    return np.random.RandomState(seed).standard_normal(SHAPE).astype(np.float32)


def _symbol_out(out_dir, x):
    block = mx.gluon.SymbolBlock.imports(os.path.join(out_dir, "model-symbol.json"), ["data"],
                                         os.path.join(out_dir, "model-0000.params"))
    return block(mx.nd.array(x)).asnumpy()


def _ort_out(out_dir, x):
    sess = onnxruntime.InferenceSession(os.path.join(out_dir, "model.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_both_formats_written_and_checked(exported):
    out, res = exported
    names = sorted(os.path.basename(p) for p in res["files"])
    assert names == ["model-0000.params", "model-symbol.json", "model.onnx"]
    assert all(os.path.getsize(p) == n > 0 for p, n in res["files"].items())
    assert res["weights"] == "initialised" and res["input"] == list(SHAPE)
    assert res["mxnet"]["max_abs_diff"] <= 1e-6
    onnx.checker.check_model(onnx.load(os.path.join(out, "model.onnx")), full_check=True)
    assert res["onnx"]["checker"] == "passed" and res["onnx"]["max_abs_diff"] < 1e-4
    assert res["onnx"]["form"] == "reference" or res["mxnet"]["form"] == "reference"
    assert "latency" not in res  # asked for by the CLI (test_cli_export_prints_one_json_object)


def test_reload_equals_the_seeded_gluon_net(arch_file, exported):
    # "initialised": seeded weights, BatchNorm statistics of the check batch (a training-mode
    # forward and backward at momentum 0); the same net built here gives the files' outputs
    cfg = load_config(None, FM + ["model.bn_momentum=0"])
    parts = parts_of(cfg)
    net = build_derived(retrain_arch(load_architecture(arch_file), cfg, parts), inference_config(cfg), 1.0, parts)
    initialize(net, parts.ctxs, cfg.seed)
    with mx.autograd.record(train_mode=True):
        out = net(mx.nd.array(_batch(cfg.seed)))
    out.backward()
    mx.nd.waitall()
    var = [p.data().asnumpy() for k, p in net._collect_params_with_prefix().items() if k.endswith("running_var")]
    assert var and not any(np.allclose(v, 1.0) for v in var)  # the statistics moved
    x = _batch()
    expected = net(mx.nd.array(x)).asnumpy()
    rtol = net_rtol(net, x.shape)  # the symbol and onnxruntime sum the same terms in their own orders
    assert_close_rel(_symbol_out(exported[0], x), expected, rtol, "symbol")
    assert_close_rel(_ort_out(exported[0], x), expected, rtol, "onnxruntime")


def test_checkpoint_weights_are_the_ones_exported(arch_file, exported, tmp_path):
    # the training net (with its aux head, retrain.aux_weight > 0), weights and BN statistics changed
    cfg = load_config(None, FM)
    assert cfg.retrain.aux_weight > 0
    parts = parts_of(cfg)
    arch = retrain_arch(load_architecture(arch_file), cfg, parts)
    net = build_derived(arch, cfg, 1.0, parts)
    initialize(net, parts.ctxs, 7)
    net.hybridize(static_alloc=True)
    net(mx.nd.zeros(SHAPE))
    rng = np.random.RandomState(5)
    for key, p in net._collect_params_with_prefix().items():
        value = rng.uniform(0.5, 1.5, p.shape) if key.endswith("running_var") else rng.normal(0, 0.3, p.shape)
        p.set_data(mx.nd.array(value.astype(np.float32)))
    x = _batch()
    expected = net(mx.nd.array(x))[0].asnumpy()  # (logits, aux logits)
    run_dir = tmp_path / "retrain"
    save_payload(str(run_dir / "retrain.ckpt"), RetrainPayload(
        config=cfg.to_dict(), arch=arch.to_dict(), width_mult=1.0, net=ckpt.net_arrays(net), trainer=None,
        epoch=1, position=0, elapsed=0.0, done=True, result=None, seed=cfg.seed))

    res = export(arch_file, str(run_dir), None, [], str(tmp_path / "mx"), formats=("mxnet",))
    assert res["weights"] == "checkpoint" and sorted(map(os.path.basename, res["files"])) == [
        "model-0000.params", "model-symbol.json"]
    got = _symbol_out(str(tmp_path / "mx"), x)
    rtol = net_rtol(net, x.shape)  # the same terms in the symbol's and onnxruntime's own orders
    assert_close_rel(got, expected, rtol, "symbol")
    assert np.abs(got - _symbol_out(exported[0], x)).max() > 1e-2  # not the initialised weights

    res = export(None, str(run_dir / "retrain.ckpt"), None, [], str(tmp_path / "onnx"), formats=("onnx",))
    assert list(map(os.path.basename, res["files"])) == ["model.onnx"]
    assert_close_rel(_ort_out(str(tmp_path / "onnx"), x), expected, rtol, "onnxruntime")


def test_a_checkpoint_of_another_architecture_is_refused(arch_file, tmp_path):
    cfg = load_config(None, FM)
    other = random_architecture(load_architecture(arch_file).layout, scope="full", keep_rate=0.9, seed=4)
    save_payload(str(tmp_path / "retrain.ckpt"), RetrainPayload(
        config=cfg.to_dict(), arch=other.to_dict(), width_mult=1.0, net={}, trainer=None, epoch=0, position=0,
        elapsed=0.0, done=False, result=None, seed=0))
    with pytest.raises(UserError, match="another architecture"):
        export(arch_file, str(tmp_path / "retrain.ckpt"), None, [], str(tmp_path / "out"))
    with pytest.raises(UserError, match="unknown export format 'tflite'"):
        export(arch_file, None, None, FM, str(tmp_path / "out"), formats=("tflite",))
    assert not (tmp_path / "out").exists()


def test_measure_exported_latency(exported):
    out, _ = exported
    lat = measure_exported_latency(os.path.join(out, "model-symbol.json"), os.path.join(out, "model-0000.params"),
                                   SHAPE, runs=3, warmup=1, onnx_file=os.path.join(out, "model.onnx"))
    assert lat["mxnet_symbol_ms"] > 0 and lat["onnxruntime_ms"] > 0 and lat["latency_runs"] == 3


@pytest.mark.parametrize("args, message", [
    (["--arch", "no/such/architecture.yaml"], "architecture file not found: no/such/architecture.yaml"),
    (["--arch", "a.yaml", "--format", "tflite"], "invalid choice: 'tflite'"),
    ([], "export needs --arch ARCH_FILE"),
])
def test_cli_bad_input_is_one_line(args, message, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MXNET_CPU_WORKER_NTHREADS="1")
    proc = subprocess.run([sys.executable, "-m", "dso_nas", "export", "--out", str(tmp_path / "out")] + args,
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if ": error:" in line]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_cli_export_prints_one_json_object(arch_file, tmp_path, capsys):
    assert main(["export", "--arch", arch_file, "--format", "onnx", "--out", str(tmp_path)] + FM) == 0
    res = json.loads(capsys.readouterr().out)
    assert list(res["files"]) == [str(tmp_path / "model.onnx")] and res["onnx"]["max_abs_diff"] < 1e-4
    assert res["latency"]["onnxruntime_ms"] > 0


def test_info_latency(arch_file, capsys):
    assert main(["info", "--arch", arch_file, "--latency", "--json"] + FM) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["params"] > 0 and res["latency"]["mxnet_symbol_ms"] > 0 and res["latency"]["onnxruntime_ms"] > 0
    assert res["latency"]["latency_input"] == list(SHAPE)
    assert main(["info", "--latency"] + FM) == 2
    assert "info --latency needs --arch" in capsys.readouterr().err
