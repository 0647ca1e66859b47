"""The CUDA libraries of ``make install GPU=1`` (issue 25): the preloader on a fake
``site-packages`` (no CUDA libraries here)."""
import logging
import os

import pytest

from dso_nas.cuda_libs import LIBRARIES, PRELOAD_ENV, locate, preload



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

