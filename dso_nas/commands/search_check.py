"""The ``search-check`` subcommand: the planted check of the search (:mod:`dso_nas.study.planted`),
real ops beside decoys that read another sample, over several seeds; rerun to continue."""
from __future__ import annotations

import argparse
import os
import sys

from .table import Command

__all__ = ["SEARCH_CHECK"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="the search to check (default: the embedded default, "
                   "experiments/fashion_mnist/search.yaml)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds, one search each")
    p.add_argument("--real", nargs="+", default=["sep_conv_3x3", "max_pool_3x3"],
                   help="the real ops; each gets its decoy (default: one conv, one pooling)")
    p.add_argument("--output-dir", metavar="DIR", default=os.path.join("runs", "search_check"),
                   help="one folder per seed")
    p.add_argument("--summary", action="store_true", help="only summarise the seeds that have run")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every seed")


def _search_check(args: argparse.Namespace) -> int:
    from ..study.planted import DEFAULT_CONFIG, search_check, table  # noqa: PLC0415 - defers the slow MXNet import

    body = search_check(args.config or DEFAULT_CONFIG, args.seeds, args.real, args.output_dir, args.overrides,
                        summary=args.summary)
    sys.stdout.write(table(body))
    return 0


SEARCH_CHECK = Command("search-check", "the planted check of the search: real ops beside decoys that read another "
                       "sample, over several seeds; rerun to continue",
                       ("  # 3 seeds of the embedded default (runs/search_check)",
                        "--seeds 1 2 3 4 5 search.epochs=16", "--summary  # the table of what has run"),
                       _search_check, _arguments, logs=True)
