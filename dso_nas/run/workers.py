"""The worker command of ``dso-nas launch``, checked before any process starts.

A ``dso-nas`` worker command (``dso-nas ...`` or ``python -m dso_nas ...``) must be a training
command (``search``, ``retrain`` or ``run``) whose config, read as the workers would read it
(``--config`` and the overrides, or a resumed run's stored config), trains with a distributed
kvstore: with ``train.kvstore=local`` N workers would be N independent runs writing one folder
at once. Any other program is run as it is.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any, Callable, List, Sequence

from ..config import load_config
from ..engine.distributed import DIST_KVSTORES
from ..errors import UserError
from ..runlog import CONFIG_NAME

__all__ = ["TRAINING_COMMANDS", "worker_command"]

#: The ``dso-nas`` subcommands that run as the workers of a job.
TRAINING_COMMANDS = ("search", "retrain", "run")


def _dso_nas_args(command: Sequence[str]) -> List[str]:
    """The ``dso-nas`` arguments of ``command``, or ``[]`` when it runs another program."""
    if command[:1] == ["dso-nas"]:
        return list(command[1:])
    python = os.path.basename(command[0]).startswith("python") if command else False
    if python and list(command[1:3]) == ["-m", "dso_nas"]:
        return list(command[3:])
    return []


def _parse(args: List[str], parse_args: Callable[[List[str]], Any]) -> Any:
    """``parse_args`` of the worker's arguments; its usage error becomes one line."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse_args(args)
    except SystemExit:
        why = next((line.split("error:", 1)[1].strip() for line in err.getvalue().splitlines() if "error:" in line),
                   "not a dso-nas command line")
        raise UserError(f"the worker command 'dso-nas {' '.join(args)}' is not valid: {why}") from None


def worker_command(command: Sequence[str], parse_args: Callable[[List[str]], Any]) -> List[str]:
    """The argv the workers run (``dso-nas`` as this installation's ``python -m dso_nas``);
    ``UserError`` (one line) for a ``dso-nas`` command that cannot run as workers of a job.

    Parameters
    ----------
    command : sequence of str
        The worker command after ``--``.
    parse_args : callable
        The ``dso-nas`` command-line parser (:func:`dso_nas.cli.parse_args`).
    """
    command = list(command)
    args = _dso_nas_args(command)
    if not args:
        if command[:1] == ["dso-nas"]:
            raise UserError(f"the worker command needs a subcommand: dso-nas {'|'.join(TRAINING_COMMANDS)} ...")
        return command
    parsed = _parse(args, parse_args)
    if parsed.command not in TRAINING_COMMANDS:
        raise UserError(f"dso-nas {parsed.command} does not train: the workers of a job run dso-nas "
                        f"{', '.join(TRAINING_COMMANDS[:-1])} or {TRAINING_COMMANDS[-1]}")
    if parsed.resume:
        stored = os.path.join(parsed.resume, CONFIG_NAME)
        if not os.path.isfile(stored):
            raise UserError(f"cannot resume: {stored} not found (is {parsed.resume} a run folder?)")
        cfg = load_config(stored, parsed.overrides)
    else:
        cfg = load_config(parsed.config, parsed.overrides)
    if cfg.train.kvstore not in DIST_KVSTORES:
        raise UserError(f"the workers' config trains with train.kvstore={cfg.train.kvstore}: each worker would run "
                        f"its own {parsed.command} into the same folder; add train.kvstore=dist_sync "
                        f"(or dist_device_sync)")
    return [sys.executable, "-m", "dso_nas", *args] if command[:1] == ["dso-nas"] else command
