"""The ``doctor`` subcommand: what can run on this machine, and why not."""
from __future__ import annotations

import argparse

from .table import Command

__all__ = ["DOCTOR"]


def _doctor(args: argparse.Namespace) -> int:
    from ..doctor import report  # noqa: PLC0415 - defers the slow import of the GPU and CUDA probes

    print(report())
    return 0


DOCTOR = Command("doctor", "MXNet's build, the CUDA libraries, the GPUs and a verdict per context, on one screen",
                 ("  # on a new machine, before context=gpu: what can run here, and why not",), _doctor,
                 loads_mxnet=False)
