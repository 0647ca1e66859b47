"""Draw the plots of a run folder: ``python tools/plot_run.py RUN_DIR``.

Writes ``sparsity.png``, ``block_flops.png`` and ``curves.png`` (those whose data exist)
into the folder and prints their paths, one per line.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from dso_nas.errors import UserError
from dso_nas.plots import plot_run
from dso_nas.runlog import setup_logging


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description="Plot λ sparsity, kept FLOPs per block and "
                                                 "loss/accuracy curves of a dso_nas run folder.")
    parser.add_argument("run_dir", help="run folder holding log.jsonl")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Plot one run folder; returns the exit status."""
    args = parse_args(argv)
    setup_logging(None)
    try:
        paths = plot_run(args.run_dir)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
