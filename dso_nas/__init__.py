"""dso_nas: an MXNet/Gluon reproduction of DSO-NAS (Zhang, Huang, Wang; TPAMI 2020).

"You Only Search Once: Single Shot Neural Architecture Search via Direct Sparse
Optimization". The package holds the search space (:mod:`dso_nas.models`), the
APG-NAG optimizer and budgets (:mod:`dso_nas.optim`), the data (:mod:`dso_nas.data`),
the training loops (:mod:`dso_nas.engine`) and the command line (:mod:`dso_nas.cli`).
"""

__version__ = "0.1.0"


def use_all_cores() -> None:
    """Give MXNet one OpenMP thread per core unless ``OMP_NUM_THREADS`` is set.

    MXNet 1.9.1 otherwise runs CPU operators on one thread here (measured: two threads make a
    search step ~30 % faster on a 2-core machine). MXNet reads the variable when it is first
    imported, so call this before that.
    """
    import os  # noqa: PLC0415 - keep the package import free of side effects

    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


#: glibc ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel (glibc only).

    glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh
    ``mmap`` and unmaps it on ``free``; MXNet's CPU operators allocate and free their
    temporary and layout-conversion buffers every step, so each step page-faulted
    ~0.5 GB of zeroed pages back in (~110k minor faults per paper-config search step,
    ~500k in mirror mode). With ``mmap`` off and trimming off, freed blocks are reused:
    0 faults per step, a few % faster, the same peak RSS (BENCHMARKS.md). Does nothing
    when ``MALLOC_MMAP_MAX_`` or ``MALLOC_TRIM_THRESHOLD_`` is set (the user's choice) or
    the C library is not glibc. Returns whether it changed anything.
    """
    import ctypes  # noqa: PLC0415
    import os  # noqa: PLC0415

    if any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
