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
