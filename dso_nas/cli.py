"""The ``dso-nas`` command line.

Every subcommand takes ``--config FILE`` and trailing ``KEY=VALUE`` overrides::

    dso-nas run      --config experiments/fashion_mnist/search.yaml   # the whole chain
    dso-nas search   --config experiments/cifar/search.yaml model.scope=share
    dso-nas search   --resume runs/cifar                               # continue a killed run
    dso-nas retrain  --config experiments/cifar/retrain.yaml --arch runs/cifar/architecture.yaml
    dso-nas evaluate --checkpoint runs/cifar_retrain/retrain.ckpt
    dso-nas info     --config experiments/cifar/search.yaml --json
    dso-nas export   --arch runs/cifar/architecture.yaml --checkpoint runs/cifar/retrain --out runs/cifar/export
    dso-nas report   runs/cifar
    dso-nas pack     /data/imagenet-folder /data/imagenet-rec          # ImageFolder -> RecordIO
    dso-nas launch   --workers 2 -- dso-nas search --config ... train.kvstore=dist_sync
    dso-nas doctor                                                     # MXNet build, CUDA, GPUs, verdicts
    dso-nas study    experiments/study/fashion_mnist.yaml              # the paper's claims over seeds
    dso-nas search-check                                               # the planted check (decoy ops)
    dso-nas lambda-noise runs/fashion_mnist/search                     # the λ gradient's noise
    dso-nas baseline --config experiments/cifar/search.yaml --kind full --out runs/full.yaml
    dso-nas plot     runs/fashion_mnist/search                         # sparsity, FLOPs, curves
    dso-nas import-genotype "Genotype(normal=[...], ...)" --out cell.yaml  # DARTS' notation -> file
    dso-nas export-genotype runs/darts_micro/architecture.yaml         # file -> DARTS' notation

The subcommands are a table (:data:`dso_nas.commands.COMMANDS`); this module reads the command
line, applies the process settings and runs the command under the shared ending
(:mod:`dso_nas.commands.entry`).

User errors (bad path, unknown key, malformed file) end with one line on stderr and exit
status 2; no traceback.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

from .commands import COMMANDS
from .commands.entry import execute, guarded, process_settings, program
from .commands.parse import build_parser, parse_args

__all__ = ["build_parser", "parse_args", "main", "entry"]


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``dso-nas``; returns the exit status."""
    args = parse_args(argv)
    command = COMMANDS.get(args.command)
    process_settings(all_cores=command.all_cores)
    status = guarded("dso-nas", lambda: execute(command, args))
    if os.environ.get("DMLC_ROLE") == "worker" and status != 0:
        # a failed worker of a distributed job: ps-lite's exit waits for the other workers,
        # which wait for this one; leave at once so the launcher stops the job
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # noqa: SLF001
    return status


def entry() -> None:
    """The ``dso-nas`` program: :func:`main` with MXNet's native INFO lines filtered out of
    the console (:func:`~dso_nas.commands.entry.program`)."""
    program(main)


if __name__ == "__main__":
    entry()
