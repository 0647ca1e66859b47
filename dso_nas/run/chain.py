"""``dso-nas run``: the whole chain in one folder - search (pre-train, search, derive), then
retraining in ``RUN_DIR/retrain/``."""
from __future__ import annotations

import os
from typing import Optional, Sequence

from ..config import config_from_dict
from ..runlog import setup_logging
from ..spaces.archfile import architecture_from_dict, load_architecture
from .folder import ARCH_FILE, RETRAIN_CKPT, SEARCH_CKPT, open_run, write_config
from .payloads import RetrainPayload, SearchPayload, load_payload
from ..plots import plot_run_or_warn as plot
from .retrain import retrain_in
from .search import search_in

__all__ = ["run_all"]


def run_all(config_path: Optional[str], overrides: Sequence[str] = (), resume: Optional[str] = None) -> str:
    """Search, derive and retrain in one folder; returns it (``report(run_dir)`` summarises it)."""
    cfg, run_dir, state, parts = open_run(config_path, overrides, resume, SEARCH_CKPT, SearchPayload)
    search_in(cfg, run_dir, state, resume_command="run", parts=parts)
    dist = parts.dist  # the retraining's too: its config differs only in output_dir
    dist.barrier()  # rank 0 has written the architecture
    arch = load_architecture(os.path.join(run_dir, ARCH_FILE))
    sub = os.path.join(run_dir, "retrain")
    rcfg = config_from_dict(dict(cfg.to_dict(), output_dir=sub))
    rpath = os.path.join(sub, RETRAIN_CKPT)
    rstate = load_payload(rpath, RetrainPayload) if os.path.exists(rpath) else None
    if dist.is_writer:
        os.makedirs(sub, exist_ok=True)
        write_config(sub, rcfg)
        setup_logging(run_dir)
    retrain_in(rcfg, sub, architecture_from_dict(rstate.arch) if rstate else arch, rstate, resume_command="run",
               parts=parts)
    if dist.is_writer:
        plot(run_dir)
    return run_dir
