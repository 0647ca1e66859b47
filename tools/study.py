"""``dso-nas study`` as a script (``make study`` runs the subcommand): a study of the paper's
claims (TPAMI Tables 1, 6, 7) over several seeds (:mod:`dso_nas.commands.study`).

    python tools/study.py experiments/study/fashion_mnist.yaml            # = dso-nas study ...
    python tools/study.py experiments/study/fashion_mnist.yaml --summary  # tables and plots only
"""
from __future__ import annotations

from typing import Optional, Sequence

from toolentry import RESUMABLE, program, run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    return run_command("study", "study", argv, interrupted=RESUMABLE)


if __name__ == "__main__":
    program(main)
