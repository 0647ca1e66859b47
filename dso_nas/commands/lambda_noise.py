"""The ``lambda-noise`` subcommand: the λ gradient's mean and spread per edge over many D_λ
batches of a search run, against the ℓ1 pull γ (:mod:`dso_nas.study.lambda_noise`)."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from ..paths import check_output, write_error
from .table import Command

__all__ = ["LAMBDA_NOISE"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="a search run folder (config.yaml and search.ckpt)")
    p.add_argument("--batches", type=int, default=100, help="D_λ batches to average over (default 100)")
    p.add_argument("--out", metavar="FILE", help="also write the JSON here")


def _lambda_noise(args: argparse.Namespace) -> int:
    from ..study.lambda_noise import measure  # noqa: PLC0415 - defers the slow MXNet import

    if args.batches < 2:
        raise UserError(f"--batches must be >= 2, got {args.batches}")
    if args.out:  # before the measurement, which takes minutes
        check_output(args.out, "--out", folder=False)
    text = json.dumps(measure(args.run, args.batches), indent=1)
    if args.out:
        try:
            with open(args.out, "w") as f:
                f.write(text + "\n")
        except OSError as e:
            raise write_error(e, "--out", args.out) from None
    sys.stdout.write(text + "\n")
    return 0


LAMBDA_NOISE = Command("lambda-noise", "the λ gradient's noise of a search run: mean and spread per edge over D_λ "
                       "batches against γ, at fixed weights",
                       ("runs/fashion_mnist/search --batches 100", "RUN_DIR --out docs/lambda_noise.json"),
                       _lambda_noise, _arguments, logs=True)
