"""The DSO-NAS pipeline (TPAMI §4.1), one module per ``dso-nas`` subcommand.

* :mod:`~dso_nas.run.folder` - run folders (open, resume, config diff); :mod:`~dso_nas.run.payloads`
  - typed checkpoint payloads; :mod:`~dso_nas.run.checkpoint` - atomic files;
* what a run builds from its config, one module each: :mod:`~dso_nas.run.parts` (space, task,
  contexts, op form, distributed seam), :mod:`~dso_nas.run.loaders` (data), :mod:`~dso_nas.run.init`
  (first weights, ``train.init``), :mod:`~dso_nas.run.nets` (networks, width),
  :mod:`~dso_nas.run.trainers` (NAG, APG-NAG); the retraining schedules are
  :mod:`dso_nas.engine.schedules`;
* :mod:`~dso_nas.run.search` (pre-train → search → derive), :mod:`~dso_nas.run.retrain`,
  :mod:`~dso_nas.run.evaluate`, :mod:`~dso_nas.run.info`, :mod:`~dso_nas.run.report`,
  :mod:`~dso_nas.run.chain` (``dso-nas run``: all of them in one folder).
"""
from .chain import run_all
from .evaluate import evaluate_checkpoint
from .info import info
from .report import PAPER_TABLE1, paper_row, report
from .retrain import retrain
from .search import search

__all__ = ["run_all", "evaluate_checkpoint", "info", "report", "paper_row", "PAPER_TABLE1", "retrain", "search"]
