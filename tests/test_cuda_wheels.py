"""The CUDA libraries of ``make install GPU=1`` (issue 25): the preloader on a fake
``site-packages`` (no CUDA libraries here), and the pieces of tools/check_cuda_wheels.py (the
real check downloads ~2.3 GB and is run by hand: ``make check-cuda-wheels``, docs/gpu.md)."""
import importlib.util
import io
import logging
import os
import struct
import sys

import pytest

from dso_nas.cuda_libs import LIBRARIES, PRELOAD_ENV, locate, preload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import check_cuda_wheels as tool  # noqa: E402


def _site(tmp_path, *, dist="mxnet_cu112-1.9.1.dist-info", skip=()):
    """A site-packages with the nvidia wheels' library files (empty) and, unless ``dist`` is
    empty, an MXNet CUDA wheel installed beside them."""
    site = tmp_path / "site-packages"
    for folder, soname in LIBRARIES:
        if soname not in skip:
            lib = site / "nvidia" / folder / "lib"
            lib.mkdir(parents=True, exist_ok=True)
            (lib / soname).write_bytes(b"")
    (site / "nvidia" / "__init__.py").write_text("")
    if dist:
        (site / dist).mkdir()
    return site


@pytest.fixture(autouse=True)
def _preload_on(monkeypatch):
    monkeypatch.delenv(PRELOAD_ENV, raising=False)


def test_preload_loads_every_library_in_dependency_order(tmp_path):
    site = _site(tmp_path)
    loaded = []
    assert preload([str(site)], load=loaded.append) == loaded
    names = [os.path.basename(p) for p in loaded]
    assert names == [soname for _, soname in LIBRARIES]
    assert all(p.startswith(str(site / "nvidia")) for p in loaded)
    first = names.index
    assert first("libcublasLt.so.11") < first("libcublas.so.11") < first("libcusolver.so.11")
    assert first("libcudart.so.11.0") == 0
    assert first("libcudnn.so.8") < first("libcudnn_ops_infer.so.8") < first("libcudnn_cnn_infer.so.8")


def test_preload_needs_an_mxnet_cuda_wheel_beside_the_nvidia_package(tmp_path):
    loaded = []
    # a CPU MXNet beside another framework's nvidia wheels: nothing is loaded
    assert preload([str(_site(tmp_path, dist="mxnet-1.9.1.dist-info"))], load=loaded.append) == []
    assert preload([str(tmp_path / "empty")], load=loaded.append) == []  # no nvidia package at all
    assert loaded == []


def test_preload_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(PRELOAD_ENV, "0")
    loaded = []
    assert preload([str(_site(tmp_path))], load=loaded.append) == [] and loaded == []


def test_a_missing_or_broken_library_is_skipped(tmp_path, caplog):
    site = _site(tmp_path, skip=("libnccl.so.2",))
    assert locate([str(site)])["libnccl.so.2"] is None
    assert locate([str(site)])["libcudnn.so.8"] == str(site / "nvidia" / "cudnn" / "lib" / "libcudnn.so.8")

    def load(path):
        if path.endswith("libcufft.so.10"):
            raise OSError("libcufft.so.10: invalid ELF header")

    with caplog.at_level(logging.WARNING, logger="dso_nas"):
        loaded = [os.path.basename(p) for p in preload([str(site)], load=load)]
    assert "libnccl.so.2" not in loaded and "libcufft.so.10" not in loaded and len(loaded) == len(LIBRARIES) - 2
    assert "could not load" in caplog.text and "invalid ELF header" in caplog.text


def test_the_preloaded_libraries_are_the_pinned_wheels():
    # every folder of LIBRARIES is an nvidia-<folder>-cu11 wheel pinned in requirements-gpu.txt
    pins = dict(tool.pins(os.path.join(ROOT, "requirements-gpu.txt")))
    assert pins["mxnet-cu112"] == "1.9.1"
    for folder, soname in LIBRARIES:
        assert f"nvidia-{folder.replace('_', '-')}-cu11" in pins, soname
    assert pins["nvidia-cudnn-cu11"].startswith("8."), "cuDNN 9 has no libcudnn.so.8"
    assert set(pins) - {"mxnet-cu112"} == {f"nvidia-{f.replace('_', '-')}-cu11" for f, _ in LIBRARIES}
    assert "mxnet==" not in open(os.path.join(ROOT, "requirements-gpu.txt")).read()


def test_elf_reader_on_the_installed_mxnet():
    spec = importlib.util.find_spec("mxnet")
    lib = os.path.join(spec.submodule_search_locations[0], "libmxnet.so")
    info = tool.elf_info(lib)
    assert info.soname == "libmxnet.so"
    assert {"libopenblas.so.0", "libgfortran.so.3", "libgomp.so.1", "libc.so.6"} <= set(info.needed)
    assert tool.library_archs(lib) == (set(), set())  # the CPU wheel: no GPU code
    with pytest.raises(ValueError, match="not a 64-bit little-endian ELF"):
        tool.elf_info(os.path.join(ROOT, "requirements-gpu.txt"))


def test_resolve_classifies_every_soname():
    provided = {
        "libmxnet.so": ("mxnet-cu112 1.9.1", ("libcudnn.so.8", "libcuda.so.1", "libc.so.6", "libfoo.so.1")),
        "libcudnn.so.8": ("nvidia-cudnn-cu11 8.9.6.50", ("libstdc++.so.6",)),
        "libcudnn_ops_infer.so.8": ("nvidia-cudnn-cu11 8.9.6.50", ("libz.so.1",)),
    }
    rows = {r.soname: r for r in tool.resolve(provided, ["libmxnet.so", "libcudnn_ops_infer.so.8"])}
    assert rows["libcudnn.so.8"].provider == "nvidia-cudnn-cu11 8.9.6.50"
    assert rows["libcudnn.so.8"].needed_by == ("libmxnet.so",)
    assert rows["libcuda.so.1"].provider == "the NVIDIA driver"
    assert rows["libc.so.6"].provider == "system (libc6)" and rows["libz.so.1"].provider == "system (zlib1g)"
    assert rows["libfoo.so.1"].provider == ""  # missing: the check fails on it
    assert rows["libcudnn_ops_infer.so.8"].needed_by == ()


def _container(entries):
    """A fat binary container: ``entries`` of (kind, sm, payload size)."""
    body = b""
    for kind, sm, size in entries:
        head = struct.pack("<HHIQ", kind, 0x0101, 64, size) + b"\0" * 12 + struct.pack("<I", sm) + b"\0" * 32
        body += head + b"\xab" * size
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def test_fatbin_reader():
    section = (_container([(2, 80, 40), (2, 86, 24)]) + b"\0" * 8
               + _container([(2, 80, 16), (1, 86, 8), (2, 90, 8)]))
    blob = io.BytesIO(b"\x11" * 100 + section + b"\x22" * 50)
    counts = tool.fatbin_archs(blob, 100, len(section))
    assert counts == {(2, 80): 2, (2, 86): 1, (1, 86): 1, (2, 90): 1}

