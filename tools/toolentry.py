"""The one entry point of every script under tools/: parse its command line, apply the process
settings of ``dso-nas`` (before MXNet loads), log with the time, and end as ``dso-nas`` does (a
user error is one line and exit status 2, an interrupt one line and 130), from
:mod:`dso_nas.commands.entry`.

A script whose work is a ``dso-nas`` subcommand is a thin wrapper (:func:`run_command`); the
others give their parser and their work to :func:`run_tool`::

    def main(argv=None) -> int:
        return run_tool("bench_ops", parser(), work, argv)

    if __name__ == "__main__":
        program(main)
"""
from __future__ import annotations

import argparse
import logging
from typing import Callable, Optional, Sequence

from dso_nas.commands import COMMANDS
from dso_nas.commands.entry import execute, guarded, process_settings, program
from dso_nas.commands.parse import command_parser

__all__ = ["run_tool", "run_command", "program", "RESUMABLE"]

#: The interrupt line of a tool that continues where it stopped.
RESUMABLE = "interrupted; run the same command again to continue"


def run_tool(prog: str, parser: argparse.ArgumentParser, work: Callable[[argparse.Namespace], int],
             argv: Optional[Sequence[str]] = None, *, settings: bool = True, intermixed: bool = False,
             interrupted: str = "interrupted") -> int:
    """Parse ``argv``, then ``work(args)``'s exit status under the shared ending.

    Parameters
    ----------
    prog : str
        The tool's name, which opens its error line (``bench_data: error: ...``).
    parser : argparse.ArgumentParser
        The tool's arguments.
    work : callable
        ``work(args) -> int``; a user error is a :class:`~dso_nas.errors.UserError`.
    argv : sequence of str, optional
        The arguments (default: the command line).
    settings : bool
        Apply the process settings (OpenMP threads, oneDNN's ISA cap, the allocator) and log
        with the time; off for tools that never load MXNet.
    intermixed : bool
        ``KEY=VALUE`` overrides may stand before options (``parse_intermixed_args``).
    interrupted : str
        The interrupt line's text after ``prog:``.
    """
    args = parser.parse_intermixed_args(argv) if intermixed else parser.parse_args(argv)
    if settings:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        process_settings()
    return guarded(prog, lambda: work(args), interrupted)


def run_command(name: str, prog: str, argv: Optional[Sequence[str]] = None, *, interrupted: str = "interrupted") -> int:
    """The ``dso-nas`` subcommand ``name`` run as the script ``prog`` (``tools/study.py`` is
    ``dso-nas study``): the same arguments, work and exit status; ``prog`` opens its error line."""
    command = COMMANDS.get(name)
    return run_tool(prog, command_parser(name, prog), lambda args: execute(command, args), argv, intermixed=True,
                    interrupted=interrupted)
