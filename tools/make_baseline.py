"""``dso-nas baseline`` as a script: a Table-1 baseline architecture file (random-share,
random-full or the full network; :mod:`dso_nas.commands.baseline`).

    python tools/make_baseline.py --config experiments/cifar/search.yaml --kind random-share \
        --like runs/cifar_search/architecture.yaml --seed 1 --out runs/baselines/random_share.yaml
"""
from __future__ import annotations

from typing import Optional, Sequence

from toolentry import program, run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    return run_command("baseline", "make_baseline", argv)


if __name__ == "__main__":
    program(main)
