"""The subcommands that read a finished run folder: ``report`` (figures beside the paper's row)
and ``plot`` (its plots)."""
from __future__ import annotations

import argparse
import json

from .table import Command

__all__ = ["REPORT", "PLOT"]


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (search, retrain or run)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _report(args: argparse.Namespace) -> int:
    from .. import run  # noqa: PLC0415 - defers the slow MXNet import

    text, data = run.report(args.run_dir)
    print(json.dumps(data) if args.json else text)
    return 0


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder holding log.jsonl")


def _plot(args: argparse.Namespace) -> int:
    from ..plots import plot_run  # noqa: PLC0415 - defers the slow matplotlib import

    for path in plot_run(args.run_dir):
        print(path)
    return 0


REPORT = Command("report", "our figures of a run folder beside the paper's table row",
                 ("runs/fashion_mnist", "runs/cifar_retrain --json"), _report, _report_arguments, logs=True)
PLOT = Command("plot", "plot λ sparsity, kept FLOPs per block and loss/accuracy curves of a run folder",
               ("runs/fashion_mnist/search", "runs/cifar_retrain  # sparsity.png, block_flops.png, curves.png "
                "(those whose data exist)"),
               _plot, _plot_arguments, loads_mxnet=False, logs=True)
