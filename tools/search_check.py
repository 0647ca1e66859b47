"""``dso-nas search-check`` as a script (``make search-check`` runs the subcommand): the planted
check of the search, real ops beside decoys that read another sample, over several seeds
(:mod:`dso_nas.study.planted`).

    python tools/search_check.py                        # = dso-nas search-check
    python tools/search_check.py --seeds 1 2 3 4 5 search.epochs=16
    python tools/search_check.py --summary              # the table of what has run
"""
from __future__ import annotations

from typing import Optional, Sequence

from toolentry import RESUMABLE, program, run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    return run_command("search-check", "search_check", argv, interrupted=RESUMABLE)


if __name__ == "__main__":
    program(main)
