"""The CUDA libraries of MXNet's pip CUDA build, found in the ``nvidia-*-cu11`` wheels.

``mxnet-cu112`` does not carry the CUDA libraries its ``libmxnet.so`` links (apache/mxnet
#20279, #21074); ``requirements-gpu.txt`` pins them as NVIDIA's wheels, which install each
under ``site-packages/nvidia/<name>/lib/``, a folder the dynamic loader does not search.
:func:`preload` loads them there, each after the libraries it needs and with global symbol
scope, before MXNet is imported: the loader then satisfies ``libmxnet.so``'s ``NEEDED``
entries (and cuDNN 8's run-time opening of its sub-libraries) by soname, and no
``LD_LIBRARY_PATH`` is needed. ``dso_nas/__init__.py`` calls it.

On a CPU install (no ``nvidia`` package, or no ``mxnet-cu*`` distribution beside it) it does
nothing but one path lookup. ``DSO_NAS_CUDA_PRELOAD=0`` turns it off (the loader then finds
the libraries where ``LD_LIBRARY_PATH`` says). ``docs/gpu.md`` lists which wheel provides which
library, as ``tools/check_cuda_wheels.py`` found it.
"""
from __future__ import annotations

import importlib.machinery
import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["LIBRARIES", "PRELOAD_ENV", "wheel_lib_dirs", "locate", "preload"]

LOG = logging.getLogger("dso_nas")

#: ``(folder under nvidia/, soname)`` of every library MXNet 1.9.1's CUDA wheel links
#: (``NEEDED`` of ``libmxnet.so``; the driver's ``libcuda.so.1`` aside) or cuDNN 8 opens at run
#: time, each after those it needs (``libcublas`` needs ``libcublasLt``, ``libcusolver`` both).
LIBRARIES: Tuple[Tuple[str, str], ...] = (
    ("cuda_runtime", "libcudart.so.11.0"),
    ("cublas", "libcublasLt.so.11"),
    ("cublas", "libcublas.so.11"),
    ("cusolver", "libcusolver.so.11"),
    ("cufft", "libcufft.so.10"),
    ("curand", "libcurand.so.10"),
    ("cuda_nvrtc", "libnvrtc.so.11.2"),
    ("nvtx", "libnvToolsExt.so.1"),
    ("nccl", "libnccl.so.2"),
    ("cudnn", "libcudnn.so.8"),
    ("cudnn", "libcudnn_ops_infer.so.8"),
    ("cudnn", "libcudnn_ops_train.so.8"),
    ("cudnn", "libcudnn_cnn_infer.so.8"),
    ("cudnn", "libcudnn_cnn_train.so.8"),
    ("cudnn", "libcudnn_adv_infer.so.8"),
    ("cudnn", "libcudnn_adv_train.so.8"),
)

#: ``DSO_NAS_CUDA_PRELOAD=0`` leaves the libraries to the dynamic loader's own search.
PRELOAD_ENV = "DSO_NAS_CUDA_PRELOAD"

#: The ``.dist-info`` folder of a pip CUDA build of MXNet (``mxnet_cu112-1.9.1.dist-info``).
_CUDA_DIST = re.compile(r"^mxnet_cu\d+-.*\.dist-info$")


def wheel_lib_dirs(search_path: Optional[Sequence[str]] = None) -> List[str]:
    """The folders holding the ``nvidia`` package on ``search_path`` (default ``sys.path``)
    that have an MXNet CUDA wheel installed beside them; ``[]`` on a CPU install."""
    spec = importlib.machinery.PathFinder.find_spec("nvidia", None if search_path is None else list(search_path))
    if spec is None or not spec.submodule_search_locations:
        return []
    out = []
    for location in spec.submodule_search_locations:
        site = os.path.dirname(os.path.abspath(location))
        try:
            beside = os.listdir(site)
        except OSError:
            continue
        if any(_CUDA_DIST.match(name) for name in beside):
            out.append(os.path.abspath(location))
    return out


def locate(search_path: Optional[Sequence[str]] = None) -> Dict[str, Optional[str]]:
    """Every soname of :data:`LIBRARIES` → its file in the ``nvidia`` wheels, or ``None``."""
    found: Dict[str, Optional[str]] = {soname: None for _, soname in LIBRARIES}
    for nvidia in wheel_lib_dirs(search_path):
        for folder, soname in LIBRARIES:
            path = os.path.join(nvidia, folder, "lib", soname)
            if found[soname] is None and os.path.isfile(path):
                found[soname] = path
    return found


def _load_global(path: str) -> Any:
    import ctypes  # noqa: PLC0415 - only a CUDA install gets here

    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def preload(search_path: Optional[Sequence[str]] = None, load: Callable[[str], Any] = _load_global) -> List[str]:
    """Load the wheels' CUDA libraries in :data:`LIBRARIES` order; call before MXNet's first import.

    Parameters
    ----------
    search_path : sequence of str, optional
        Where to look for the ``nvidia`` package (default ``sys.path``).
    load : callable
        Loads one library file (default: ``ctypes.CDLL`` with ``RTLD_GLOBAL``).

    Returns
    -------
    list of str
        The files loaded: none on a CPU install or with ``DSO_NAS_CUDA_PRELOAD=0``. A library
        that fails to load is logged and skipped (``import mxnet`` then names what is missing).
    """
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return []
    loaded = []
    for soname, path in locate(search_path).items():
        if path is None:
            continue
        try:
            load(path)
        except OSError as e:
            LOG.warning("could not load %s: %s", path, e)
            continue
        loaded.append(path)
    return loaded
