"""GPU contexts (issue 25): the check every ``context=gpu`` run makes before anything is built,
with the GPU query faked (no GPU here), and ``dso-nas doctor``."""
import os
import subprocess
import sys

import pytest

from datafiles import write_idx
from dso_nas import doctor, gpus
from dso_nas.cli import main
from dso_nas.config import load_config
from dso_nas.errors import UserError
from dso_nas.run.folder import write_config
from dso_nas.run.payloads import RetrainPayload, save_payload
from dso_nas.spaces import get_space
from dso_nas.spaces.archfile import load_architecture, save_architecture
from dso_nas.spaces.dense.baselines import full_architecture
from test_pipeline import MICRO, ROOT, _error_line, _micro

GIB = 2 ** 30
A100 = gpus.GPU(0, "NVIDIA A100-SXM4-80GB", 80 * GIB, (8, 0))
RTX3090 = gpus.GPU(0, "NVIDIA GeForce RTX 3090", 24 * GIB, (8, 6))
RTX4090 = gpus.GPU(0, "NVIDIA GeForce RTX 4090", 24 * GIB, (8, 9))
H100 = gpus.GPU(0, "NVIDIA H100 80GB HBM3", 80 * GIB, (9, 0))
H200 = gpus.GPU(0, "NVIDIA H200", 141 * GIB, (9, 0))
FUTURE = gpus.GPU(0, "NVIDIA B200", 180 * GIB, (10, 0))
K80 = gpus.GPU(0, "Tesla K80", 12 * GIB, (3, 7))


def _machine(*cards, error=""):
    return gpus.GpuQuery(tuple(gpus.GPU(i, g.name, g.memory, g.capability) for i, g in enumerate(cards)),
                         "12.4" if cards else "", error)


@pytest.fixture
def fake(monkeypatch):
    """``fake(*cards, cuda=True)``: this process sees a CUDA build of MXNet and these GPUs."""
    monkeypatch.delenv(gpus.ARCHS_ENV, raising=False)

    def install(*cards, cuda=True, error=""):
        monkeypatch.setattr(gpus, "mxnet_has_cuda", lambda: cuda)
        monkeypatch.setattr(gpus, "query_gpus", lambda: _machine(*cards, error=error))
    return install


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fmnist")
    write_idx(str(folder), n_train=64, n_test=32, seed=0)
    return str(folder)


# ----------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize("card", [A100, RTX3090, RTX4090])
def test_gpus_the_wheels_serve(fake, card):
    fake(card)
    assert gpus.gpu_problem(0) is None
    gpus.check_gpu_context("gpu", [0])


@pytest.mark.parametrize("card, cuda", [(H100, "11.8"), (H200, "11.8"), (FUTURE, "12.8")])
def test_gpus_newer_than_the_wheels_are_refused_in_one_line(fake, card, cuda):
    fake(card)
    problem = gpus.gpu_problem(0)
    cc = f"{card.capability[0]}.{card.capability[1]}"
    assert f"gpu:0 ({card.name}) has compute capability {cc}" in problem
    assert "newest kernels of MXNet 1.9.1's CUDA wheels (8.6, no PTX)" in problem
    assert f"MXNET_CUDA_ARCH including {cc} and CUDA >= {cuda}" in problem and "docs/gpu.md" in problem
    with pytest.raises(UserError, match=r"^context=gpu:0: gpu:0 .*compute capability") as e:
        gpus.check_gpu_context("gpu:0", [0])
    assert "\n" not in str(e.value)


def test_gpu_older_than_the_wheels(fake):
    fake(K80)
    assert "compute capability 3.7, not among the kernels" in gpus.gpu_problem(0)


def test_no_cuda_build_no_gpu_no_such_gpu(fake):
    fake(A100, cuda=False)
    assert "built without CUDA" in gpus.gpu_problem(0) and "make install GPU=1" in gpus.gpu_problem(0)
    fake(error="no NVIDIA driver: libcuda.so.1 is not found")
    assert gpus.gpu_problem(0) == "no GPU: no NVIDIA driver: libcuda.so.1 is not found"
    fake(A100, H200)
    assert gpus.gpu_problem(2) == "there is no gpu:2: this machine has 2 GPU(s), gpu:0-1"
    with pytest.raises(UserError, match="context=gpu:0,1: gpu:1 .* 9.0"):  # every listed GPU is checked
        gpus.check_gpu_context("gpu:0,1", [0, 1])


def test_a_source_build_declares_its_archs(fake, monkeypatch):
    fake(H200)
    monkeypatch.setenv(gpus.ARCHS_ENV, "7.0;8.0;9.0")
    assert gpus.gpu_problem(0) is None
    monkeypatch.setenv(gpus.ARCHS_ENV, "8.0, 8.6+PTX")  # PTX for 8.6: the driver compiles it for 9.0
    assert gpus.gpu_problem(0) is None
    monkeypatch.setenv(gpus.ARCHS_ENV, "8.0;8.6")
    assert "newest kernels of DSO_NAS_CUDA_ARCHS (8.6, no PTX)" in gpus.gpu_problem(0)
    monkeypatch.setenv(gpus.ARCHS_ENV, "sm_90")
    with pytest.raises(UserError, match="DSO_NAS_CUDA_ARCHS='sm_90': expected compute capabilities"):
        gpus.gpu_problem(0)


def test_cubins_run_on_their_major_version_only():
    wheels = gpus.parse_archs(gpus.WHEEL_ARCHS, "wheels")
    assert wheels.cubins == ((5, 0), (6, 0), (7, 0), (8, 0), (8, 6)) and wheels.ptx == ()
    served = {cc: gpus.runs_on(cc, wheels) for cc in [(3, 7), (5, 2), (6, 1), (7, 5), (8, 0), (8, 6), (8, 9),
                                                       (9, 0), (10, 0), (12, 0)]}
    assert served == {(3, 7): False, (5, 2): True, (6, 1): True, (7, 5): True, (8, 0): True, (8, 6): True,
                      (8, 9): True, (9, 0): False, (10, 0): False, (12, 0): False}


class FakeDriver:
    """The CUDA driver calls ``gpus.driver_query`` makes, answering like a driver with ``cards``."""

    def __init__(self, cards, init=0):
        self.cards, self.init = cards, init

    @staticmethod
    def _set(ref, value):
        ref._obj.value = value  # noqa: SLF001 - what ctypes.byref wraps
        return 0

    def cuDriverGetVersion(self, ref):
        return self._set(ref, 12040)

    def cuInit(self, flags):
        return self.init

    def cuDeviceGetCount(self, ref):
        return self._set(ref, len(self.cards))

    def cuDeviceGet(self, ref, index):
        return self._set(ref, index)

    def cuDeviceGetName(self, buf, size, device):
        buf.value = self.cards[device.value].name.encode()
        return 0

    def cuDeviceTotalMem_v2(self, ref, device):
        return self._set(ref, self.cards[device.value].memory)

    def cuDeviceGetAttribute(self, ref, attr, device):
        return self._set(ref, self.cards[device.value].capability[{75: 0, 76: 1}[attr]])

    def cuGetErrorName(self, code, ref):
        ref._obj.value = b"CUDA_ERROR_INVALID_DEVICE"  # noqa: SLF001
        return 0


def test_driver_query_reads_name_memory_and_compute_capability():
    query = gpus.driver_query(FakeDriver([A100, H200]))
    assert query.driver == "12.4" and not query.error
    assert [(g.index, g.name, g.memory, g.capability) for g in query.gpus] == [
        (0, A100.name, A100.memory, (8, 0)), (1, H200.name, H200.memory, (9, 0))]
    assert query.gpus[1].describe() == "NVIDIA H200, 141.0 GiB, compute capability 9.0"
    assert gpus.driver_query(FakeDriver([], init=100)).error.startswith("the driver sees no GPU")
    assert "cuInit gave CUDA_ERROR_INVALID_DEVICE" in gpus.driver_query(FakeDriver([A100], init=101)).error


def test_driver_without_a_call_is_reported():
    class Old(FakeDriver):
        def __getattribute__(self, name):
            if name == "cuDeviceTotalMem_v2":
                raise AttributeError("undefined symbol: cuDeviceTotalMem_v2")
            return super().__getattribute__(name)

    query = gpus.driver_query(Old([A100]))
    assert query.gpus == () and "not a usable CUDA driver (undefined symbol: cuDeviceTotalMem_v2)" in query.error


# ----------------------------------------------------------------------------- every command


def _refused(capsys, argv, needle, *absent):
    assert main(argv) == 2
    line = _error_line(capsys)
    assert needle in line, line
    for path in absent:
        assert not os.path.exists(path), path
    return line


def test_search_and_run_refuse_a_cpu_build_before_the_run_folder(fmnist, tmp_path, capsys):
    # this machine's MXNet is the CPU wheel: no fake needed
    for command in ("search", "run"):
        out = tmp_path / command
        _refused(capsys, [command] + _micro(fmnist, str(out), "context=gpu"),
                 "context=gpu: this MXNet is built without CUDA", out)


@pytest.mark.parametrize("card, needle", [(H200, "compute capability 9.0, newer than"), (None, "no GPU: no NVIDIA")])
def test_search_refuses_a_gpu_it_cannot_run_on(fmnist, tmp_path, capsys, fake, card, needle):
    fake(*([card] if card else []), error="" if card else "no NVIDIA driver: libcuda.so.1 is not found")
    out = tmp_path / "run"
    _refused(capsys, ["search"] + _micro(fmnist, str(out), "context=gpu:0"), needle, out)


def test_resume_refuses_before_touching_the_folder(fmnist, tmp_path, capsys, fake):
    fake(H100)
    run = tmp_path / "run"
    run.mkdir()
    write_config(str(run), load_config(None, _micro(fmnist, str(run), "context=gpu")))
    _refused(capsys, ["search", "--resume", str(run)], "compute capability 9.0", run / "run.log")
    assert os.listdir(run) == ["config.yaml"]


def test_retrain_evaluate_info_export_latency_refuse(fmnist, tmp_path, capsys, fake):
    fake(H200)
    micro = os.path.join(ROOT, "tests", "golden", "micro.yaml")
    arch = str(tmp_path / "architecture.yaml")  # the micro config's complete network
    save_architecture(full_architecture(get_space("dense").layout(load_config(micro, []))), arch)
    out = tmp_path / "retrain"
    _refused(capsys, ["retrain", "--arch", arch] + _micro(fmnist, str(out), "context=gpu"), "9.0", out)
    cfg = load_config(None, _micro(fmnist, str(tmp_path / "r")))
    ckpt = tmp_path / "retrain.ckpt"
    save_payload(str(ckpt), RetrainPayload(cfg.to_dict(), load_architecture(arch).to_dict(), 1.0, {}, None, 1, 0,
                                           0.0, True, {}, cfg.seed))
    _refused(capsys, ["evaluate", "--checkpoint", str(ckpt), "context=gpu"], "context=gpu: gpu:0 (NVIDIA H200)")
    _refused(capsys, ["info", "--config", micro, "--arch", arch, "--latency", "context=gpu"], "9.0")
    export = tmp_path / "export"
    _refused(capsys, ["export", "--arch", arch, "--config", micro, "--format", "mxnet", "--out", str(export),
                      "context=gpu"], "9.0", export)
    _refused(capsys, ["latency", "--config", os.path.join(ROOT, "experiments", "mobile", "micro_search.yaml"),
                      "--device", "gpu", f"latency.table={tmp_path / 'table.json'}"],
             "context=gpu: gpu:0 (NVIDIA H200)", tmp_path / "table.json")


# ----------------------------------------------------------------------------- dso-nas doctor


def test_doctor_here(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dso-nas doctor\n")
    for label in ("python", "mxnet", "features", "kernels", "OpenMP", "CUDA libs", "driver", "GPUs", "verdict"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert "CUDA no" in out and "MKLDNN yes" in out  # the CPU wheel
    assert out.splitlines()[-2:] == [
        "verdict     cpu    OK",
        "            gpu:0  not usable: this MXNet is built without CUDA (the CPU wheel): install the CUDA build "
        "with 'make install GPU=1' (docs/gpu.md)"]


def test_doctor_faked_gpus(capsys, fake, monkeypatch):
    fake(H200, A100)
    ran = []
    real_probe = doctor.probe

    def probe(mx, ctx):  # the CPU wheel cannot compute on a GPU: only record which one doctor tries
        if ctx.device_type == "gpu":
            ran.append(ctx.device_id)
        else:
            real_probe(mx, ctx)

    monkeypatch.setattr(doctor, "probe", probe)
    text = doctor.report()
    lines = text.splitlines()
    assert "GPUs        gpu:0  NVIDIA H200, 141.0 GiB, compute capability 9.0" in lines
    assert "            gpu:1  NVIDIA A100-SXM4-80GB, 80.0 GiB, compute capability 8.0" in lines
    assert lines[-3] == "verdict     cpu    OK"
    assert lines[-2].startswith("            gpu:0  not usable: gpu:0 (NVIDIA H200) has compute capability 9.0")
    assert lines[-1] == "            gpu:1  OK"
    assert ran == [1]  # nothing is run on the GPU the check refuses


def test_doctor_reports_a_failing_probe_and_import(fake, monkeypatch):
    fake(A100)

    def broken(mx, ctx):
        raise RuntimeError("CUDA: no kernel image is available for execution on the device\nmore")

    monkeypatch.setattr(doctor, "probe", broken)
    assert doctor.report().splitlines()[-1] == (
        "            gpu:0  not usable: MXNet failed on it: CUDA: no kernel image is available for execution on the device")
    monkeypatch.setattr(doctor, "_import_mxnet", lambda: (None, "import mxnet failed: libcuda.so.1: cannot open"))
    lines = doctor.report().splitlines()
    assert "mxnet       import mxnet failed: libcuda.so.1: cannot open" in lines
    assert lines[-2:] == ["verdict     cpu    not usable: import mxnet failed: libcuda.so.1: cannot open",
                          "            gpu:0  not usable: import mxnet failed: libcuda.so.1: cannot open"]


def test_an_mxnet_that_cannot_load_is_one_line(tmp_path):
    # a CUDA build without the driver: `import mxnet` raises the loader's OSError
    fake_mx = tmp_path / "mxnet"
    fake_mx.mkdir()
    (fake_mx / "__init__.py").write_text(
        "raise OSError('libcuda.so.1: cannot open shared object file: No such file or directory')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]), OMP_NUM_THREADS="1")
    info = subprocess.run([sys.executable, "-m", "dso_nas", "info", *MICRO], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 2 and "Traceback" not in info.stderr, info.stderr[-2000:]
    assert info.stderr.strip().splitlines()[-1] == (
        "dso-nas: error: cannot load MXNet: libcuda.so.1: cannot open shared object file: No such file or "
        "directory ('dso-nas doctor' tells more)")
    doc = subprocess.run([sys.executable, "-m", "dso_nas", "doctor"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert doc.returncode == 0, doc.stderr[-2000:]
    assert "verdict     cpu    not usable: import mxnet failed: libcuda.so.1: cannot open shared object" in doc.stdout
