"""Run folders: the resolved config, logging, the checkpoint of the phase in progress.

A run folder holds ``config.yaml`` (the resolved config), ``run.log``, ``log.jsonl`` (one
JSON line per epoch), the atomic checkpoint of the phase in progress (``search.ckpt`` or
``retrain.ckpt``), the derived ``architecture.yaml`` with its drawings, the λ history, plots
and ``result.json``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence, Tuple, Type

from ..config import CfgNode, config_from_dict, diff, load_config
from ..data import check_dataset
from ..errors import CheckpointError, UserError
from ..runlog import CONFIG_NAME, setup_logging
from . import checkpoint as ckpt
from .payloads import load_payload

__all__ = ["SEARCH_CKPT", "RETRAIN_CKPT", "ARCH_FILE", "RESULT_FILE", "open_run", "write_config"]

LOG = logging.getLogger("dso_nas")

SEARCH_CKPT = "search.ckpt"
RETRAIN_CKPT = "retrain.ckpt"
ARCH_FILE = "architecture.yaml"
RESULT_FILE = "result.json"


def write_config(run_dir: str, cfg: CfgNode) -> None:
    """Write the resolved config to ``run_dir/config.yaml`` atomically."""
    ckpt.atomic_write_bytes(os.path.join(run_dir, CONFIG_NAME), cfg.dump().encode())


def open_run(config_path: Optional[str], overrides: Sequence[str], resume: Optional[str],
             checkpoint_name: str, payload_cls: Type[Any]) -> Tuple[CfgNode, str, Optional[Any]]:
    """Resolve the config and the run folder; load the checkpoint payload when resuming.

    A fresh run refuses a folder that already holds this phase's checkpoint (nothing is
    overwritten); a resumed run refuses a config that differs from the stored one.
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
        if state is not None:
            changes = diff(config_from_dict(state.config).to_dict(), stored.to_dict())
            if changes:
                raise CheckpointError(f"checkpoint {path} was written with another config ({'; '.join(changes[:3])})")
        setup_logging(resume)
        LOG.info("resuming %s from %s", resume, "its last checkpoint" if state else "the start")
        return stored, resume, state
    cfg = load_config(config_path, overrides)
    run_dir = cfg.output_dir
    if os.path.exists(os.path.join(run_dir, checkpoint_name)):
        raise UserError(f"{run_dir} already holds a run: continue it with --resume {run_dir} or set output_dir=NEW_DIR")
    check_dataset(cfg.data.name, cfg.data.root)  # before anything is written
    os.makedirs(run_dir, exist_ok=True)
    write_config(run_dir, cfg)
    setup_logging(run_dir)
    LOG.info("run folder %s", run_dir)
    return cfg, run_dir, None

