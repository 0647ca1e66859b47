"""What every entry point does around its work, ``dso-nas`` and the scripts under ``tools/`` alike:
the process settings before MXNet loads, and the same ending (a user error is one line and
exit status 2, an interrupt one line and 130).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, NoReturn

from .. import cap_onednn_isa, tune_allocator, use_all_cores
from ..errors import UserError
from ..quiet import filter_native_stderr
from .table import Command

__all__ = ["process_settings", "execute", "guarded", "program"]


def process_settings(all_cores: bool = True) -> None:
    """One OpenMP thread per core (unless ``all_cores`` is false), oneDNN's AVX2 cap and the
    allocator: call before MXNet is first imported."""
    if all_cores:
        use_all_cores()
    cap_onednn_isa()
    tune_allocator()


def execute(command: Command, args: argparse.Namespace) -> int:
    """Run ``command``'s work on ``args``: MXNet loaded first when the work needs it (a CUDA build
    without its libraries is a :class:`~dso_nas.errors.UserError`), the console log set up when
    the work logs; its exit status."""
    if command.loads_mxnet:
        try:
            from .. import run  # noqa: F401, PLC0415 - defers the slow MXNet import (`--help` stays fast)
        except OSError as e:  # the loader's: a CUDA build of MXNet without the driver or a CUDA library
            raise UserError(f"cannot load MXNet: {e} ('dso-nas doctor' tells more)") from None
    if command.logs:
        from ..runlog import setup_logging  # noqa: PLC0415 - defers tqdm's import (`--help` stays fast)

        setup_logging(None)
    return command.run(args)


def guarded(prog: str, work: Callable[[], int], interrupted: str = "interrupted") -> int:
    """``work()``'s exit status, with the shared ending.

    Parameters
    ----------
    prog : str
        The program's name, which opens the ending's line (``dso-nas``, ``study``).
    work : callable
        The work; returns the exit status.
    interrupted : str
        The line's text after ``prog:`` when the work is interrupted (Ctrl-C).

    Returns
    -------
    int
        ``work()``'s status; 2 after a :class:`~dso_nas.errors.UserError` (``prog: error: ...``),
        130 after an interrupt, 1 after any other error of a distributed worker (traceback
        printed; elsewhere such an error propagates).
    """
    try:
        return work()
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - only a distributed worker lands here
        if os.environ.get("DMLC_ROLE") != "worker":
            raise
        traceback.print_exc()
        return 1


def program(main: Callable[[], int]) -> NoReturn:
    """Run a program's ``main()`` and exit with its status, MXNet's native INFO lines filtered
    out of the console (:mod:`dso_nas.quiet`; the filter is process-wide, so only a program
    sets it, never a ``main`` that tests call); a closed output pipe (``| head``) exits 1."""
    filter_native_stderr()
    try:
        sys.exit(main())
    except BrokenPipeError:  # the output piped into a program that stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
