"""The ``launch`` subcommand: a training command run as the workers of a distributed job."""
from __future__ import annotations

import argparse

from .parse import parse_args
from .table import Command

__all__ = ["LAUNCH"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, required=True, metavar="N", help="worker processes")
    p.add_argument("--servers", type=int, default=1, metavar="S", help="parameter-server processes")
    p.add_argument("--hosts", metavar="FILE", help="hosts file (one per line) for ssh; none: all on this machine")
    p.add_argument("--port", type=int, default=0, metavar="P", help="scheduler port (0: a free one)")
    p.add_argument("--root-uri", metavar="ADDR", help="the scheduler's address as the hosts see it")


def _launch(args: argparse.Namespace) -> int:
    from ..engine.launch import check_launch, launch  # noqa: PLC0415 - defers the slow MXNet import
    from ..run.workers import worker_command  # noqa: PLC0415 - defers the slow MXNet import

    check_launch(args.worker_command, args.workers, args.servers, args.port, args.root_uri, local=False)
    cmd = worker_command(args.worker_command, parse_args)
    return launch(cmd, args.workers, args.servers, args.port, args.hosts, args.root_uri)


LAUNCH = Command("launch", "run a training command as the workers of a distributed (ps-lite) job",
                 ("--workers 2 -- dso-nas search --config experiments/fashion_mnist/search.yaml "
                  "train.kvstore=dist_sync",
                  "--workers 2 -- dso-nas search --resume runs/fashion_mnist_search",
                  "--workers 8 --servers 2 --hosts hosts.txt -- dso-nas retrain --config ... train.kvstore=dist_sync"),
                 _launch, _arguments, all_cores=False, logs=True, rest="worker_command")
