"""What every tool under tools/ does around its work: the process settings of the ``dso-nas``
command, log lines with the time, and the same ending (a user error is one line and exit 2,
an interrupt says how to continue and exits 130)."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from dso_nas import cap_onednn_isa, tune_allocator, use_all_cores
from dso_nas.errors import UserError
from dso_nas.quiet import filter_native_stderr


def prepare() -> None:
    """Logging, one OpenMP thread per core, oneDNN's AVX2 cap, the allocator, MXNet's stderr filter
    (before MXNet is first imported)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    use_all_cores()
    cap_onednn_isa()
    tune_allocator()
    filter_native_stderr()


def guarded(name: str, work: Callable[[], int]) -> int:
    """``work()``'s exit status; a :class:`UserError` is one line (2), an interrupt a hint (130)."""
    try:
        return work()
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
