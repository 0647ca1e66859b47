"""The ``baseline`` subcommand: a Table-1 baseline architecture file (random-share, random-full
or the full network), built by the config's space.

A random baseline keeps each λ edge independently with probability ``--keep-rate``, or, with
``--like``, exactly as many edges per block as the searched architecture keeps (Table 1's
random structures "with the same number of connections"), drawn with ``--seed``. Every file
is then retrained with ``dso-nas retrain --arch FILE``, where the width multiplier scales it to
the same parameter budget (``retrain.target_params``) as the searched model.
"""
from __future__ import annotations

import argparse
import logging

from ..errors import UserError
from ..paths import check_output, write_error
from .table import Command

__all__ = ["BASELINE", "KINDS"]

LOG = logging.getLogger("dso_nas")
KINDS = ("random-share", "random-full", "full")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="experiment YAML whose model section gives the layout")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--keep-rate", type=float, default=None, help="edge keep probability of a random baseline")
    p.add_argument("--like", metavar="ARCH_FILE",
                   help="keep as many edges per block as this searched architecture file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="FILE", help="architecture YAML to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")


def _baseline(args: argparse.Namespace) -> int:
    from ..config import load_config  # noqa: PLC0415 - defers the slow PyYAML import
    from ..spaces import get_space  # noqa: PLC0415 - defers the slow MXNet import
    from ..spaces.archfile import load_architecture, save_architecture  # noqa: PLC0415 - defers the slow MXNet import

    try:
        check_output(args.out, "--out", folder=False, force=args.force)
        cfg = load_config(args.config, args.overrides)
        like = load_architecture(args.like) if args.like else None
        rate = args.keep_rate if args.keep_rate is not None else 0.5
        arch = get_space(cfg.model.space).baseline(args.kind, cfg, keep_rate=rate, seed=args.seed, like=like)
        try:
            save_architecture(arch, args.out)
        except OSError as e:
            raise write_error(e, "--out", args.out) from None
    except ValueError as e:  # a keep rate or a layout the space cannot build
        raise UserError(str(e)) from None
    LOG.info("wrote %s (%s, %d cell(s))", args.out, args.kind, len(arch.cells))
    return 0


BASELINE = Command("baseline", "write a Table-1 baseline architecture file: random-share, random-full or the "
                   "full network",
                   ("--config experiments/cifar/search.yaml --kind random-share "
                    "--like runs/cifar_search/architecture.yaml --seed 1 --out runs/baselines/random_share.yaml",
                    "--config experiments/fashion_mnist/search.yaml --kind full --out /tmp/fm_full.yaml"),
                   _baseline, _arguments, logs=True)
