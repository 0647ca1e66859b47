"""GPUs: what the CUDA driver reports, and whether this MXNet's CUDA kernels run on them.

MXNet 1.9.1's CUDA wheels carry their kernels as machine code (cubins) for compute
capability 5.0, 6.0, 7.0, 8.0 and 8.6, and no PTX that the driver could compile for a newer
GPU (:data:`WHEEL_ARCHS`). A cubin runs on its own major version at an equal or higher minor
one (8.6 code runs on 8.9, not on 9.0), so on Hopper (9.0: H100, H200) and newer the
wheels' own kernels cannot run. :func:`check_gpu_context` says so in one line before anything
is built, instead of a CUDA error mid-run; ``dso-nas doctor`` (:mod:`dso_nas.doctor`) gives
the same verdict for every GPU.

A source build of MXNet whose ``MXNET_CUDA_ARCH`` includes the GPU's compute capability
declares its list in ``DSO_NAS_CUDA_ARCHS`` (:data:`ARCHS_ENV`; ``docs/gpu.md``).

The GPU list comes from the CUDA driver API (``libcuda.so.1``, through ``ctypes``), which
numbers GPUs as MXNet does (both follow ``CUDA_VISIBLE_DEVICES``); tests replace
:func:`query_gpus` and :func:`mxnet_has_cuda`.
"""
from __future__ import annotations

import ctypes
import functools
import os
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

from .errors import UserError

__all__ = ["WHEEL_ARCHS", "ARCHS_ENV", "GPU", "GpuQuery", "Archs", "driver_query", "query_gpus", "mxnet_has_cuda",
           "build_archs", "parse_archs", "runs_on", "gpu_problem", "check_gpu_context"]

#: The compute capabilities MXNet 1.9.1's CUDA wheels have kernels for: ``MXNET_CUDA_ARCH
#: "5.0;6.0;7.0;8.0;8.6"`` in apache/mxnet ``config/distribution/linux_cu112.cmake`` (the
#: ``mxnet-cu112`` build), cubins only, no PTX; ``tools/check_cuda_wheels.py`` reads the same
#: list out of the wheel's ``libmxnet.so``.
WHEEL_ARCHS = "5.0;6.0;7.0;8.0;8.6"

#: The ``MXNET_CUDA_ARCH`` list of a source build of MXNet, in the same form (``X.Y``, and
#: ``X.Y+PTX`` where the build also carries PTX for ``X.Y``), replacing :data:`WHEEL_ARCHS`.
ARCHS_ENV = "DSO_NAS_CUDA_ARCHS"

#: CUDA driver API: ``CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR`` / ``_MINOR``.
_CC_MAJOR, _CC_MINOR = 75, 76
_CUDA_ERROR_NO_DEVICE = 100

#: The first CUDA release that compiles for a compute capability newer than the wheels' (9.0:
#: Hopper; 10.0 and 12.0: Blackwell), for the one-line advice.
_MIN_CUDA = {(9, 0): "11.8", (10, 0): "12.8", (12, 0): "12.8"}

#: Where the check points for a GPU the wheels do not serve.
DOC = "docs/gpu.md"


@dataclass(frozen=True)
class GPU:
    """One GPU as the driver numbers it."""

    index: int
    name: str
    memory: int  #: bytes
    capability: Tuple[int, int]

    def describe(self) -> str:
        """``"NVIDIA H200, 139.8 GiB, compute capability 9.0"``."""
        return f"{self.name}, {self.memory / 2 ** 30:.1f} GiB, compute capability {self.capability[0]}.{self.capability[1]}"


@dataclass(frozen=True)
class GpuQuery:
    """The driver's answer: its CUDA version (``"12.4"``; ``""`` without a driver), the GPUs,
    and why none could be listed (``""`` when the driver answered)."""

    gpus: Tuple[GPU, ...]
    driver: str = ""
    error: str = ""


@dataclass(frozen=True)
class Archs:
    """The compute capabilities a build has cubins for, those it has PTX for, and the source."""

    cubins: Tuple[Tuple[int, int], ...]
    ptx: Tuple[Tuple[int, int], ...]
    source: str

    def describe(self) -> str:
        """``"5.0, 6.0, 7.0, 8.0, 8.6, no PTX"``."""
        ptx = ", ".join(f"{a}.{b}" for a, b in self.ptx)
        return ", ".join(f"{a}.{b}" for a, b in self.cubins) + (f", PTX for {ptx}" if ptx else ", no PTX")


def _call(lib: Any, name: str, *args: Any) -> int:
    return int(getattr(lib, name)(*args))


def _error_name(lib: Any, code: int) -> str:
    text = ctypes.c_char_p()
    try:
        if _call(lib, "cuGetErrorName", code, ctypes.byref(text)) == 0 and text.value:
            return text.value.decode(errors="replace")
    except AttributeError:
        pass
    return f"CUresult {code}"


def driver_query(lib: Any) -> GpuQuery:
    """The GPUs the CUDA driver library ``lib`` (a ``ctypes`` library) reports."""
    try:
        return _ask(lib)
    except AttributeError as e:  # a driver library without one of the calls
        return GpuQuery((), "", f"libcuda.so.1 is not a usable CUDA driver ({e})")


def _ask(lib: Any) -> GpuQuery:
    version = ctypes.c_int()
    driver = ""
    if _call(lib, "cuDriverGetVersion", ctypes.byref(version)) == 0 and version.value:
        driver = f"{version.value // 1000}.{version.value % 1000 // 10}"
    code = _call(lib, "cuInit", 0)
    if code == _CUDA_ERROR_NO_DEVICE:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return GpuQuery((), driver, "the driver sees no GPU" +
                        (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""))
    if code:
        return GpuQuery((), driver, f"the CUDA driver failed to start: cuInit gave {_error_name(lib, code)}")
    count = ctypes.c_int()
    code = _call(lib, "cuDeviceGetCount", ctypes.byref(count))
    if code:
        return GpuQuery((), driver, f"cuDeviceGetCount gave {_error_name(lib, code)}")
    gpus = []
    for index in range(count.value):
        device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name = ctypes.create_string_buffer(256)
        memory = ctypes.c_size_t()
        code = (_call(lib, "cuDeviceGet", ctypes.byref(device), index)
                or _call(lib, "cuDeviceGetName", name, len(name), device)
                or _call(lib, "cuDeviceTotalMem_v2", ctypes.byref(memory), device)
                or _call(lib, "cuDeviceGetAttribute", ctypes.byref(major), _CC_MAJOR, device)
                or _call(lib, "cuDeviceGetAttribute", ctypes.byref(minor), _CC_MINOR, device))
        if code:
            return GpuQuery(tuple(gpus), driver, f"GPU {index}: the driver gave {_error_name(lib, code)}")
        gpus.append(GPU(index, name.value.decode(errors="replace"), memory.value, (major.value, minor.value)))
    return GpuQuery(tuple(gpus), driver)


@functools.lru_cache(maxsize=1)
def _driver_gpus() -> GpuQuery:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return GpuQuery((), "", "no NVIDIA driver: libcuda.so.1 is not found")
    return driver_query(lib)


def query_gpus() -> GpuQuery:
    """The GPUs of this machine, asked once per process from the CUDA driver."""
    return _driver_gpus()


def mxnet_has_cuda() -> bool:
    """Whether the MXNet installed is a CUDA build (its ``CUDA`` feature)."""
    import mxnet as mx  # noqa: PLC0415 - defer the slow import; `dso-nas doctor` reports a failing one

    return bool(mx.runtime.Features().is_enabled("CUDA"))


_ARCH = re.compile(r"^(\d+)\.(\d+)(\+PTX)?$", re.IGNORECASE)


def parse_archs(text: str, source: str) -> Archs:
    """``"5.0;6.0;8.6+PTX"`` (``;``, ``,`` or blanks between) → :class:`Archs`; ``UserError`` naming ``source``."""
    cubins, ptx = [], []
    for item in re.split(r"[;,\s]+", text.strip()):
        match = _ARCH.match(item)
        if not match:
            raise UserError(f"{source}={text!r}: expected compute capabilities such as '8.0;9.0' "
                            "('+PTX' after one whose PTX the build carries)")
        arch = (int(match.group(1)), int(match.group(2)))
        cubins.append(arch)
        if match.group(3):
            ptx.append(arch)
    return Archs(tuple(sorted(set(cubins))), tuple(sorted(set(ptx))), source)


def build_archs() -> Archs:
    """The compute capabilities of the MXNet in use: ``DSO_NAS_CUDA_ARCHS`` when set, else the wheels'."""
    text = os.environ.get(ARCHS_ENV, "").strip()
    if text:
        return parse_archs(text, ARCHS_ENV)
    return parse_archs(WHEEL_ARCHS, "MXNet 1.9.1's CUDA wheels")


def runs_on(capability: Tuple[int, int], archs: Archs) -> bool:
    """Whether a GPU of ``capability`` runs the build's kernels: a cubin of its major version
    at an equal or lower minor one, or PTX of an equal or lower capability."""
    major, minor = capability
    return (any(a == major and b <= minor for a, b in archs.cubins)
            or any((a, b) <= capability for a, b in archs.ptx))


def gpu_problem(index: int, query: Optional[GpuQuery] = None, archs: Optional[Archs] = None) -> Optional[str]:
    """Why ``gpu:index`` cannot run this MXNet's kernels, or ``None`` when it can (CUDA build,
    the GPU exists, its compute capability is served)."""
    if not mxnet_has_cuda():
        return ("this MXNet is built without CUDA (the CPU wheel): install the CUDA build with "
                f"'make install GPU=1' ({DOC})")
    query = query_gpus() if query is None else query
    if not query.gpus:
        return f"no GPU: {query.error or 'the driver lists none'}"
    if index >= len(query.gpus):
        return f"there is no gpu:{index}: this machine has {len(query.gpus)} GPU(s), gpu:0-{len(query.gpus) - 1}"
    gpu = query.gpus[index]
    archs = build_archs() if archs is None else archs
    if runs_on(gpu.capability, archs):
        return None
    cc = f"{gpu.capability[0]}.{gpu.capability[1]}"
    if gpu.capability > archs.cubins[-1]:
        ptx = ", ".join(f"{a}.{b}" for a, b in archs.ptx)
        newest = f"{archs.cubins[-1][0]}.{archs.cubins[-1][1]}"
        why = f"newer than the newest kernels of {archs.source} ({newest}, {'PTX for ' + ptx if ptx else 'no PTX'})"
        cuda = _MIN_CUDA.get(gpu.capability)
        fix = (f"see {DOC}: a source build of MXNet with MXNET_CUDA_ARCH including {cc}"
               f"{f' and CUDA >= {cuda}' if cuda else ''}, declared in {ARCHS_ENV}")
    else:
        why = f"not among the kernels of {archs.source} ({archs.describe()})"
        fix = f"see {DOC}"
    return f"gpu:{index} ({gpu.name}) has compute capability {cc}, {why}: {fix}"


def check_gpu_context(spec: str, indices: Sequence[int]) -> None:
    """``UserError`` (one line, before anything is built) when a ``gpu:i`` of ``context=spec``
    cannot run this MXNet's kernels."""
    for index in indices:
        problem = gpu_problem(index)
        if problem:
            raise UserError(f"context={spec}: {problem}")
