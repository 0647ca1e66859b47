"""The training subcommands: ``run`` (the whole chain), ``search``, ``retrain`` and ``evaluate``."""
from __future__ import annotations

import argparse
import json

from .table import Command, add_config_args

__all__ = ["RUN", "SEARCH", "RETRAIN", "EVALUATE"]


def _run_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")


def _run(args: argparse.Namespace) -> int:
    from .. import run  # noqa: PLC0415 - defers the slow MXNet import (`--help` stays fast)

    run_dir = run.run_all(args.config, args.overrides, resume=args.resume)
    print(run.report(run_dir)[0])
    return 0


def _search_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search in RUN_DIR from its last checkpoint")


def _search(args: argparse.Namespace) -> int:
    from .. import run  # noqa: PLC0415 - defers the slow MXNet import

    run.search(args.config, args.overrides, resume=args.resume)
    return 0


def _retrain_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--arch", metavar="ARCH_FILE", help="architecture YAML written by search or tools/make_baseline.py")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the retraining in RUN_DIR")


def _retrain(args: argparse.Namespace) -> int:
    from .. import run  # noqa: PLC0415 - defers the slow MXNet import

    run.retrain(args.config, args.overrides, arch_path=args.arch, resume=args.resume)
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a retrain.ckpt, or the run folder that holds one")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="where the data lies and how it is read: data.root, data.cache, data.threads, "
                        "data.test_limit, context, batch sizes (the rest is the checkpoint's own)")


def _evaluate(args: argparse.Namespace) -> int:
    from .. import run  # noqa: PLC0415 - defers the slow MXNet import

    print(json.dumps(run.evaluate_checkpoint(args.checkpoint, args.overrides)))
    return 0


RUN = Command("run", "pre-train, search, derive, retrain, evaluate and report in one run folder",
              ("--config experiments/fashion_mnist/search.yaml", "--resume runs/fashion_mnist"),
              _run, _run_arguments)
SEARCH = Command("search", "pre-train the supernet, search λ, derive the architecture",
                 ("--config experiments/cifar/search.yaml data.root=/data/cifar model.scope=share",
                  "--resume runs/cifar_search"),
                 _search, _search_arguments)
RETRAIN = Command("retrain", "train a derived architecture from scratch and evaluate it",
                  ("--config experiments/cifar/retrain.yaml --arch runs/cifar_search/architecture.yaml "
                   "data.root=/data/cifar", "--resume runs/cifar_retrain"),
                  _retrain, _retrain_arguments)
EVALUATE = Command("evaluate", "test figures of a retrained checkpoint",
                   ("--checkpoint runs/cifar_retrain",
                    "--checkpoint runs/cifar_retrain/retrain.ckpt data.root=/data/cifar"),
                   _evaluate, _evaluate_arguments)
