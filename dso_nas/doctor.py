"""``dso-nas doctor``: one screen on what this installation can run, and on which device.

MXNet's version and build features, the compute capabilities its CUDA kernels serve, OpenMP
threads, the CUDA libraries and where they were loaded from, every GPU with its name, memory
and compute capability, and one verdict line per context: ``cpu`` and each ``gpu:i``
(``gpu:0`` when there is none). A GPU verdict is the check every ``context=gpu`` run makes
first (:func:`dso_nas.gpus.gpu_problem`), then, where it passes, a small elementwise op and a
convolution run on the device. MXNet is imported here, not at module import, so that an
installation whose ``import mxnet`` fails gets that failure reported as a verdict.
"""
from __future__ import annotations

import os
import platform
import sys
from typing import Any, Dict, List, Optional, Tuple

from . import gpus
from .cuda_libs import LIBRARIES, locate
from .errors import UserError

__all__ = ["FEATURES", "loaded_libraries", "probe", "report"]

#: The MXNet build features shown (``mxnet.runtime.Features``).
FEATURES = ("CUDA", "CUDNN", "NCCL", "MKLDNN", "DIST_KVSTORE")

_LABEL = 11


def _line(label: str, text: str) -> str:
    return f"{label:<{_LABEL}} {text}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:240]


def loaded_libraries() -> Dict[str, str]:
    """File name → path of every shared library mapped into this process (``/proc/self/maps``)."""
    out: Dict[str, str] = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
                if path.startswith("/") and ".so" in path:
                    out.setdefault(os.path.basename(path), path)
    except OSError:
        pass
    return out


def _import_mxnet() -> Tuple[Any, str]:
    """``(mxnet, "")``, or ``(None, why the import failed)``."""
    try:
        import mxnet  # noqa: PLC0415 - a failing import is what doctor reports
    except Exception as e:  # noqa: BLE001 - OSError from the loader, anything from MXNet's init
        return None, f"import mxnet failed: {_first_line(e)}"
    return mxnet, ""


def probe(mx: Any, ctx: Any) -> None:
    """Run an elementwise op and a 3x3 convolution on ``ctx`` and check the results (raises on failure)."""
    x = mx.nd.ones((1, 2, 4, 4), ctx=ctx)
    w = mx.nd.ones((3, 2, 3, 3), ctx=ctx)
    y = mx.nd.Convolution(x * 2, w, kernel=(3, 3), num_filter=3, no_bias=True).asnumpy()
    if y.shape != (1, 3, 2, 2) or abs(float(y.sum()) - 12 * 36.0) > 1e-3:
        raise RuntimeError(f"wrong result on {ctx}: {y.ravel()[:4]}")


def _verdict(mx: Any, ctx: Any) -> str:
    try:
        probe(mx, ctx)
    except Exception as e:  # noqa: BLE001 - any failure is the verdict
        return f"not usable: MXNet failed on it: {_first_line(e)}"
    return "OK"


def _library_lines(loaded: Dict[str, str]) -> List[str]:
    wheels = locate()
    if not any(wheels.values()) and not any(soname in loaded for _, soname in LIBRARIES):
        return [_line("CUDA libs", "none: no nvidia-*-cu11 wheels beside an mxnet-cu* install (a CPU install)")]
    lines = []
    for i, (_, soname) in enumerate(LIBRARIES):
        if soname in loaded:
            where = loaded[soname]
        elif wheels[soname]:
            where = f"{wheels[soname]} (found, not loaded)"
        else:
            where = "MISSING"
        lines.append(_line("CUDA libs" if i == 0 else "", f"{soname:<24} {where}"))
    return lines


def _features(mx: Any) -> str:
    features = mx.runtime.Features()
    return ", ".join(f"{name} {'yes' if features.is_enabled(name) else 'no'}" for name in FEATURES)


def _archs() -> str:
    try:
        archs = gpus.build_archs()
    except UserError as e:  # a malformed DSO_NAS_CUDA_ARCHS
        return str(e)
    return f"compute capability {archs.describe()} ({archs.source}; {gpus.ARCHS_ENV} declares a source build's)"


def report() -> str:
    """The doctor's screen."""
    mx, failure = _import_mxnet()
    query = gpus.query_gpus()
    loaded = loaded_libraries()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = ["dso-nas doctor",
             _line("python", f"{platform.python_version()} ({sys.executable})")]
    if mx is None:
        lines.append(_line("mxnet", failure))
    else:
        lines += [_line("mxnet", f"{mx.__version__} ({os.path.dirname(mx.__file__)})"),
                  _line("features", _features(mx))]
    lines += [_line("kernels", _archs()),
              _line("OpenMP", f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} ({cores} cores)")]
    lines += _library_lines(loaded)
    driver = loaded.get("libcuda.so.1")
    lines.append(_line("driver", f"{driver} (CUDA {query.driver or '?'})" if driver else f"none: {query.error}"))
    if query.gpus:
        lines += [_line("GPUs" if i == 0 else "", f"gpu:{g.index}  {g.describe()}") for i, g in enumerate(query.gpus)]
    else:
        lines.append(_line("GPUs", f"none{': ' + query.error if query.error and driver else ''}"))
    lines += _verdicts(mx, failure, query)
    return "\n".join(lines)


def _verdicts(mx: Any, failure: str, query: gpus.GpuQuery) -> List[str]:
    contexts = ["cpu"] + [f"gpu:{i}" for i in range(max(1, len(query.gpus)))]
    out = []
    for i, name in enumerate(contexts):
        if mx is None:
            verdict = f"not usable: {failure}"
        elif name == "cpu":
            verdict = _verdict(mx, mx.cpu())
        else:
            index = int(name.split(":")[1])
            try:
                problem: Optional[str] = gpus.gpu_problem(index, query)
            except UserError as e:  # a malformed DSO_NAS_CUDA_ARCHS
                problem = str(e)
            verdict = f"not usable: {problem}" if problem else _verdict(mx, mx.gpu(index))
        out.append(_line("verdict" if i == 0 else "", f"{name:<6} {verdict}"))
    return out
