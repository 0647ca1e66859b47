"""``dso-nas plot`` as a script: ``python tools/plot_run.py RUN_DIR``.

Writes ``sparsity.png``, ``block_flops.png`` and ``curves.png`` (those whose data exist)
into the folder and prints their paths, one per line.
"""
from __future__ import annotations

from typing import Optional, Sequence

from toolentry import program, run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Plot one run folder; returns the exit status."""
    return run_command("plot", "plot_run", argv)


if __name__ == "__main__":
    program(main)
