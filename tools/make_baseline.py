"""Write a Table-1 baseline architecture file: random-share, random-full or the full network.

    python tools/make_baseline.py --config experiments/cifar/search.yaml --kind random-share \
        --like runs/cifar_search/architecture.yaml --seed 1 --out runs/baselines/random_share.yaml

A random baseline keeps each λ edge independently with probability ``--keep-rate``, or, with
``--like``, exactly as many edges per block as the searched architecture keeps (Table 1's
random structures "with the same number of connections"), drawn with ``--seed``. The space of
the config (``model.space``) builds it. Every file is then retrained with
``dso-nas retrain --arch FILE``, where the width multiplier scales it to the same parameter
budget (``retrain.target_params``) as the searched model.
"""
from __future__ import annotations

import argparse
import logging
import sys

from dso_nas.config import load_config
from dso_nas.errors import UserError
from dso_nas.paths import check_output, write_error
from dso_nas.spaces import get_space
from dso_nas.spaces.archfile import load_architecture, save_architecture

LOG = logging.getLogger("dso_nas")
KINDS = ("random-share", "random-full", "full")


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="experiment YAML whose model section gives the layout")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--keep-rate", type=float, default=None, help="edge keep probability of a random baseline")
    p.add_argument("--like", help="keep as many edges per block as this searched architecture file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="architecture YAML to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
    except (UserError, ValueError) as e:
        print(f"make_baseline: error: {e}", file=sys.stderr)
        return 2
    LOG.info("wrote %s (%s, %d cell(s))", args.out, args.kind, len(arch.cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
