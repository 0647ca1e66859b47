"""The study of TPAMI Tables 1, 6 and 7 at a chosen scale (``tools/study.py``, ``make study``).

* :mod:`~dso_nas.study.plan` - the study YAML (seeds, arms, claims);
* :mod:`~dso_nas.study.runner` - one folder per (arm, seed), resumable;
* :mod:`~dso_nas.study.summary` - mean ± std per arm, Welch t-tests;
* :func:`plot_study` - its figures (:mod:`dso_nas.plots.study`).
"""
from ..plots.study import plot_study
from .plan import Arm, Claim, Study, load_study
from .runner import STUDY_FILE, check_plan, run_dir, run_study, write_study
from .summary import arm_rows, claim_rows, paired, table_markdown, welch

__all__ = ["Arm", "Claim", "Study", "load_study", "check_plan", "run_study", "run_dir", "write_study", "STUDY_FILE",
           "arm_rows", "claim_rows", "table_markdown", "plot_study", "welch", "paired"]
