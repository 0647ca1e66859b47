"""The table of ``dso-nas`` subcommands: what one is (:class:`Command`) and where it is listed.

A subcommand is one :class:`Command`: its name, its help line, its examples, the function
that adds its arguments to an argparse parser and the function that does its work. A new
one is a function pair in a module of :mod:`dso_nas.commands` plus one ``register`` line
in that package's ``__init__``; the parser, ``dso-nas --help`` and the tests read the table.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from ..registry import Registry

__all__ = ["Command", "COMMANDS", "register", "add_config_args"]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A subcommand without arguments of its own."""


@dataclass(frozen=True)
class Command:
    """One ``dso-nas`` subcommand.

    Parameters
    ----------
    name : str
        The word on the command line (``dso-nas NAME``).
    help : str
        The one-line help, lower case, no final stop (``dso-nas --help`` lists it; the
        subcommand's own ``--help`` opens with it, capitalised).
    examples : tuple of str
        Command lines after ``dso-nas NAME``, shown under "examples:" in ``--help``.
    run : callable
        ``run(args) -> int``: the work, given the parsed arguments; returns the exit status.
        A user error is a :class:`~dso_nas.errors.UserError`.
    arguments : callable
        ``arguments(parser)`` adds the subcommand's arguments to its parser.
    all_cores : bool
        Give MXNet one OpenMP thread per core before it loads (``launch`` shares the cores
        among its workers itself).
    loads_mxnet : bool
        The work imports MXNet: it is loaded first, so that a CUDA build without its
        libraries is one error line (``doctor`` reports on the build instead).
    logs : bool
        The work logs to the console: the ``dso_nas`` logger is set up first (the training
        subcommands set it up themselves, with their run folder's log file).
    rest : str, optional
        The attribute that receives the words after ``--`` (``launch``: the worker command);
        none: ``--`` is not special.
    """

    name: str
    help: str
    examples: Tuple[str, ...]
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    all_cores: bool = True
    loads_mxnet: bool = True
    logs: bool = False
    rest: Optional[str] = None

    @property
    def description(self) -> str:
        """The help line as the sentence that opens the subcommand's ``--help``."""
        return self.help[0].upper() + self.help[1:] + "."

    def epilog(self, prog: str = "dso-nas") -> str:
        """The "examples:" block of the subcommand's ``--help``."""
        return "examples:\n" + "\n".join(f"  {prog} {self.name} {e}" for e in self.examples)


#: Every ``dso-nas`` subcommand, in the order ``dso-nas --help`` lists them.
COMMANDS: Registry[Command] = Registry("command", "dso-nas COMMAND")


def register(command: Command) -> Command:
    """List ``command`` in :data:`COMMANDS` under its name; returns it."""
    return COMMANDS.register(command.name, command)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and the trailing ``KEY=VALUE`` overrides of a subcommand that reads a config."""
    parser.add_argument("--config", metavar="FILE", help="experiment YAML (only what differs from the defaults, "
                        "which are the paper's CIFAR-10 setting: CIFAR-10 needs data.root)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, dotted keys, YAML values; anywhere on the line")
