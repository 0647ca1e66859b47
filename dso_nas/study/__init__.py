"""The study of TPAMI Tables 1, 6 and 7 at a chosen scale (``dso-nas study``, ``make study``),
and two checks of the search itself.

* :mod:`~dso_nas.study.plan` - the study YAML (seeds, arms, claims);
* :mod:`~dso_nas.study.runner` - one folder per (arm, seed), resumable;
* :mod:`~dso_nas.study.summary` - mean ± std per arm, Welch t-tests;
* :mod:`~dso_nas.study.planted` - the planted check: real ops beside decoys (``dso-nas search-check``);
* :mod:`~dso_nas.study.lambda_noise` - the λ gradient's noise of a search run (``dso-nas lambda-noise``);
* :func:`plot_study` - its figures (:mod:`dso_nas.plots.study`).
"""
from ..plots.study import plot_study
from .plan import Arm, Claim, Study, load_study
from .runner import STUDY_FILE, check_plan, run_dir, run_study, write_study
from .summary import arm_rows, claim_rows, paired, table_markdown, welch

__all__ = ["Arm", "Claim", "Study", "load_study", "check_plan", "run_study", "run_dir", "write_study", "STUDY_FILE",
           "arm_rows", "claim_rows", "table_markdown", "plot_study", "welch", "paired"]
