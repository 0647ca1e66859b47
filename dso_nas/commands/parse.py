"""The ``dso-nas`` command line read from the command table (:data:`~dso_nas.commands.table.COMMANDS`)."""
from __future__ import annotations

import argparse
import re
import sys
from typing import List, Optional

from .table import COMMANDS, Command

__all__ = ["build_parser", "parse_args", "command_parser"]

#: A config override on the command line.
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _add_command(sub, command: Command) -> argparse.ArgumentParser:
    parser = sub.add_parser(command.name, help=command.help, description=command.description,
                            epilog=command.epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    command.arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dso-nas``: one subparser per registered command."""
    parser = argparse.ArgumentParser(prog="dso-nas", description="DSO-NAS: single-shot NAS via direct sparse optimization")
    sub = parser.add_subparsers(dest="command", required=True)
    for _, command in COMMANDS.items():
        _add_command(sub, command)
    return parser


def command_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """A stand-alone parser of the command ``name`` for a script named ``prog`` (``tools/*.py``)."""
    command = COMMANDS.get(name)
    parser = argparse.ArgumentParser(prog=prog, description=command.description,
                                     epilog=f"the same as: dso-nas {name} ...")
    command.arguments(parser)
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line; ``KEY=VALUE`` overrides may stand anywhere on it (``launch``
    takes its worker command after ``--``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv and argv[0] in COMMANDS else None
    rest: List[str] = []
    if command is not None and command.rest and "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    args, extra = parser.parse_known_args(argv)
    command = COMMANDS.get(args.command)
    if command.rest:
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)} (the worker command goes after --)")
        setattr(args, command.rest, rest)
        return args
    stray = [e for e in extra if not OVERRIDE.match(e)]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args
