"""dso_nas: an MXNet/Gluon reproduction of DSO-NAS (Zhang, Huang, Wang; TPAMI 2020).

"You Only Search Once: Single Shot Neural Architecture Search via Direct Sparse
Optimization". The package holds the search space (:mod:`dso_nas.models`), the
APG-NAG optimizer and budgets (:mod:`dso_nas.optim`), the data (:mod:`dso_nas.data`),
the training loops (:mod:`dso_nas.engine`) and the command line (:mod:`dso_nas.cli`).
"""

__version__ = "0.1.0"
