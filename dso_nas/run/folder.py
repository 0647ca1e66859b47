"""Opening a run folder for a phase: its resolved config, its log, the checkpoint it resumes from.

A run folder holds ``config.yaml`` (the resolved config), ``run.log``, ``log.jsonl`` (one
JSON line per epoch), the atomic checkpoint of the phase in progress (``search.ckpt`` or
``retrain.ckpt``), the derived ``architecture.yaml`` with its drawings, the λ history, plots
and ``result.json``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional, Sequence, Tuple, Type

from ..config import CfgNode, config_from_dict, diff, load_config
from ..data import check_dataset
from ..engine.distributed import Distributed
from ..engine.launch import LAUNCH_ENV
from ..errors import CheckpointError, UserError
from ..paths import check_output
from ..runlog import CONFIG_NAME, setup_logging
from . import checkpoint as ckpt
from .parts import Parts, parts_of
from .payloads import load_payload

__all__ = ["SEARCH_CKPT", "RETRAIN_CKPT", "ARCH_FILE", "RESULT_FILE", "check_output_dir", "open_run", "write_config",
           "resume_hint"]

LOG = logging.getLogger("dso_nas")

SEARCH_CKPT = "search.ckpt"
RETRAIN_CKPT = "retrain.ckpt"
ARCH_FILE = "architecture.yaml"
RESULT_FILE = "result.json"


def write_config(run_dir: str, cfg: CfgNode) -> None:
    """Write the resolved config to ``run_dir/config.yaml`` atomically."""
    ckpt.atomic_write_bytes(os.path.join(run_dir, CONFIG_NAME), cfg.dump().encode())


def check_output_dir(path: str) -> None:
    """``UserError`` naming ``path`` when a run folder cannot be made or written there: it is a
    file, lies under a file, or its first existing ancestor is not writable."""
    check_output(path, "output_dir")


def resume_hint(command: str, run_dir: str) -> str:
    """The one line after a stop: the checkpoint is saved, and the command that continues the
    run (under ``dso-nas launch``, the whole launch line: the launcher passes it to its workers)."""
    launcher = os.environ.get(LAUNCH_ENV, "")
    return f"interrupted; checkpoint saved, continue with: {launcher + ' ' if launcher else ''}dso-nas {command} " \
           f"--resume {run_dir}"


#: What a phase leaves in its folder once it has run (besides its checkpoint): a search its
#: epoch log and architecture, a retraining its epoch log and result (its architecture file is
#: the input it copies in before the first checkpoint).
_OUTPUTS = {SEARCH_CKPT: ("log.jsonl", ARCH_FILE), RETRAIN_CKPT: ("log.jsonl", RESULT_FILE)}


def open_run(config_path: Optional[str], overrides: Sequence[str], resume: Optional[str],
             checkpoint_name: str, payload_cls: Type[Any],
             check: Optional[Callable[[CfgNode, Parts], None]] = None) -> Tuple[CfgNode, str, Optional[Any], Parts]:
    """Resolve the config and the run folder; load the checkpoint payload when resuming.

    A fresh run refuses a folder that already holds this phase's checkpoint (nothing is
    overwritten); a resumed run refuses a config that differs from the stored one, and a
    folder whose checkpoint is gone while the outputs of a run are still there.

    The run's parts (:func:`~dso_nas.run.parts.parts_of`: contexts, op form, distributed seam)
    are built here, once, before the folder is touched, and returned with the config, the
    folder and the payload: who writes the folder is decided by their seam. ``check(cfg,
    parts)`` runs on a fresh run's config before the folder is touched (retraining: the
    architecture fits the config).
    """
    if resume:
        stored_path = os.path.join(resume, CONFIG_NAME)
        if not os.path.isfile(stored_path):
            raise CheckpointError(f"cannot resume: {stored_path} not found (is {resume} a run folder?)")
        stored = load_config(stored_path)
        if config_path or overrides:
            wanted = load_config(config_path, overrides) if config_path else load_config(stored_path, overrides)
            wanted.output_dir = stored.output_dir
            changes = diff(stored.to_dict(), wanted.to_dict())
            if changes:
                raise CheckpointError(f"config changed since the run started ({'; '.join(changes[:3])}); start a new run instead")
        path = os.path.join(resume, checkpoint_name)
        state = load_payload(path, payload_cls) if os.path.exists(path) else None
        outputs = [f for f in _OUTPUTS.get(checkpoint_name, ()) if os.path.exists(os.path.join(resume, f))]
        if state is None and outputs:
            raise CheckpointError(f"cannot resume {resume}: {checkpoint_name} is gone but the folder holds "
                                  f"{', '.join(outputs)}; start a new run with output_dir=NEW_DIR")
        if state is not None:
            changes = diff(config_from_dict(state.config).to_dict(), stored.to_dict())
            if changes:
                raise CheckpointError(f"checkpoint {path} was written with another config ({'; '.join(changes[:3])})")
        parts = parts_of(stored)  # a context that cannot run: one line, before the folder is touched
        _log_to(resume, parts.dist)
        LOG.info("resuming %s from %s", resume, "its last checkpoint" if state else "the start")
        return stored, resume, state, parts
    cfg = load_config(config_path, overrides)
    run_dir = cfg.output_dir
    if os.path.exists(os.path.join(run_dir, checkpoint_name)):
        raise UserError(f"{run_dir} already holds a run: continue it with --resume {run_dir} or set output_dir=NEW_DIR")
    parts = parts_of(cfg)  # before anything is written: a context that cannot run ends here
    if check is not None:
        check(cfg, parts)
    check_dataset(cfg.data.name, cfg.data.root)
    if cfg.train.init:
        ckpt.check_checkpoint_file(cfg.train.init)
    check_output_dir(run_dir)
    if checkpoint_name == SEARCH_CKPT and cfg.search.budget == "latency" and cfg.latency.model == "table":
        check_output(cfg.latency.table, "latency.table")  # the search measures into it
    if not parts.dist.is_writer:
        _log_to(run_dir, parts.dist)
        return cfg, run_dir, None, parts
    try:
        os.makedirs(run_dir, exist_ok=True)
        write_config(run_dir, cfg)
    except OSError as e:
        raise UserError(f"output_dir {run_dir}: cannot write there ({e.strerror})") from None
    _log_to(run_dir, parts.dist)
    LOG.info("run folder %s", run_dir)
    return cfg, run_dir, None, parts


def _log_to(run_dir: str, dist: Distributed) -> None:
    """The writer logs to the console and ``run.log``; another worker to the console, tagged."""
    if dist.is_writer:
        setup_logging(run_dir)
    else:
        setup_logging(None, tag=f"worker {dist.rank}/{dist.world}")

