"""The ``study`` subcommand: the paper's claims (TPAMI Tables 1, 6, 7) over several seeds.

Searched vs random vs full network, split vs joint, pre-training vs none, and a hand-designed
reference (:mod:`dso_nas.study`). Every (arm, seed) has its own folder under the study's
output_dir; what has a result.json is skipped, so a killed study continues where it stopped.
Writes study.json, study.md (the tables: mean ± std test error per arm, a Welch t-test per
claim) and the plots.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from ..errors import UserError
from .table import Command

__all__ = ["STUDY"]

LOG = logging.getLogger("dso_nas")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", metavar="FILE", help="study YAML (experiments/study/*.yaml)")
    p.add_argument("--output-dir", metavar="DIR", help="override the study's output_dir")
    p.add_argument("--summary", action="store_true", help="only write the tables and plots of what has run")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every run, applied last")


def _study(args: argparse.Namespace) -> int:
    from ..study import (  # noqa: PLC0415 - defers the slow MXNet import
        STUDY_FILE, load_study, plot_study, run_study, table_markdown)

    study = load_study(args.study, args.output_dir, args.overrides)
    if not args.summary:
        run_study(study)
    path = os.path.join(study.output_dir, STUDY_FILE)
    if not os.path.exists(path):
        raise UserError(f"{path} not found: nothing of this study has run yet")
    with open(path, encoding="utf-8") as f:
        body = json.load(f)
    table = table_markdown(body)
    with open(os.path.join(study.output_dir, "study.md"), "w", encoding="utf-8") as f:
        f.write(f"# Study {study.path}\n\n{len(body['runs'])} runs, {body['wall_seconds'] / 60:.1f} min wall\n\n"
                + table)
    plots = plot_study(body, study.output_dir)
    sys.stdout.write(table)
    LOG.info("wrote %s, study.md, %s", os.path.join(study.output_dir, STUDY_FILE), ", ".join(plots))
    return 0


STUDY = Command("study", "run a study of the paper's claims (Tables 1, 6, 7) over several seeds; rerun to continue",
                ("experiments/study/fashion_mnist.yaml", "experiments/study/fashion_mnist.yaml --summary",
                 "experiments/study/smoke.yaml --output-dir /tmp/s data.root=DIR"),
                _study, _arguments, logs=True)
