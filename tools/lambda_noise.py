"""``dso-nas lambda-noise`` as a script: the λ gradient's noise of a search run
(:mod:`dso_nas.study.lambda_noise`).

    python tools/lambda_noise.py runs/fashion_mnist/search --batches 100   # = dso-nas lambda-noise ...
"""
from __future__ import annotations

from typing import Optional, Sequence

from toolentry import RESUMABLE, program, run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    return run_command("lambda-noise", "lambda_noise", argv, interrupted=RESUMABLE)


if __name__ == "__main__":
    program(main)
