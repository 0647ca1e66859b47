"""dso_nas: an MXNet/Gluon reproduction of DSO-NAS (Zhang, Huang, Wang; TPAMI 2020).

"You Only Search Once: Single Shot Neural Architecture Search via Direct Sparse
Optimization". The package holds the registries of search spaces (:mod:`dso_nas.spaces`),
tasks (:mod:`dso_nas.tasks`), datasets (:mod:`dso_nas.data`) and operations
(:mod:`dso_nas.ops`), the fixed network pieces (:mod:`dso_nas.models`), APG-NAG and the
budgets (:mod:`dso_nas.search`), the training loops (:mod:`dso_nas.engine`), the pipeline
(:mod:`dso_nas.run`) and the command line (:mod:`dso_nas.cli`); ``docs/architecture.md``
maps them.

Importing the package has one side effect, and only on an install of MXNet's pip CUDA build:
the CUDA libraries of the ``nvidia-*-cu11`` wheels are loaded first, so that MXNet finds them
without ``LD_LIBRARY_PATH`` (:mod:`dso_nas.cuda_libs`).
"""
import ctypes
import os

from .cuda_libs import preload as _preload_cuda_libs

__version__ = "0.1.0"

_preload_cuda_libs()


def use_all_cores() -> None:
    """Give MXNet one OpenMP thread per core unless ``OMP_NUM_THREADS`` is set.

    MXNet 1.9.1 otherwise runs CPU operators on one thread here (measured: two threads make a
    paper-config search step ~30 % faster on a 2-core machine). The micro DARTS-space networks
    are the exception: their ops are too small to share, and one thread ran their search
    epochs 1.8-2x faster (BENCHMARKS.md), so ``make compare`` sets ``OMP_NUM_THREADS=1``.
    MXNet reads the variable when it is first imported, so call this before that.
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


def cap_onednn_isa() -> None:
    """Run oneDNN's AVX2 kernels on AVX-512 CPUs too, unless ``DNNL_MAX_CPU_ISA`` is set.

    MXNet 1.9.1's oneDNN fails with "could not create a primitive descriptor iterator" in the
    backward pass of a hybridized net where an op with a multiple of 16 channels feeds a
    convolution to an odd multiple of 8 (16 → 40, measured on a Sapphire Rapids Xeon; the
    AVX-512 kernels block channels by 16, the AVX2 ones by 8, which is what
    ``retrain.width_divisor`` aligns to). oneDNN reads the variable at its first primitive,
    so call this before any computation. ``DNNL_MAX_CPU_ISA=ALL`` restores the AVX-512
    kernels.
    """
    os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")


#: glibc ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_MALLOC_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
               "MALLOC_MMAP_THRESHOLD_")


def tune_allocator() -> bool:
    """Keep freed memory in the process and in one heap (glibc only).

    glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh
    ``mmap`` and unmaps it on ``free``; MXNet's CPU operators allocate and free their
    temporary and layout-conversion buffers every step, so each step page-faulted
    ~0.5 GB of zeroed pages back in (~110k minor faults per paper-config search step,
    ~450k in mirror mode). Here ``mmap`` and trimming are off, so freed blocks are reused,
    and there is one arena, so a block freed by one of MXNet's threads serves the next
    allocation of another (with one arena per thread, mirror mode's peak RSS grew by
    0.4 GB of blocks stranded in the arena of the thread that freed them). Measured on the
    paper config against glibc's defaults (BENCHMARKS.md): no page faults per step; plain
    steps 0-7 % faster at 1 % more peak RSS; mirror steps 9 % faster at 11-21 % less peak
    RSS (1.62 GB instead of 1.83-2.05 GB).
    Call it before MXNet starts its threads. Does nothing when one of the
    ``MALLOC_*`` variables that set these is in the environment (the user's choice) or the
    C library is not glibc. Returns whether it changed anything.
    """
    if any(k in os.environ for k in _MALLOC_ENV):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2 ** 31 - 1)))
