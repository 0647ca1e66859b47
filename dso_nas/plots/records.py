"""The epoch records of a run folder as the plots read them: per phase, sorted, as series.

Retraining records are read from the run folder itself (a standalone retraining run) or else
from its ``retrain/`` subfolder (``dso-nas run``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ..runlog import CONFIG_NAME, read_jsonl

log = logging.getLogger(__name__)

__all__ = ["Record", "PHASES", "RETRAIN_SUBDIR", "load_phases", "series", "stage_sizes"]

Record = Dict[str, Any]

PHASES = ("pretrain", "search", "retrain")
RETRAIN_SUBDIR = "retrain"


def _read_phase(run_dir: str, phase: str) -> List[Record]:
    """The records of one phase in ``run_dir``, sorted by epoch (torn lines are skipped)."""
    records = read_jsonl(run_dir, phase=phase)
    return sorted((r for r in records if isinstance(r.get("epoch"), int)), key=lambda r: r["epoch"])


def load_phases(run_dir: str) -> Dict[str, List[Record]]:
    """Epoch records of every phase of a run folder.

    Parameters
    ----------
    run_dir : str
        A search, retraining or ``dso-nas run`` folder.

    Returns
    -------
    dict
        ``phase -> records sorted by epoch``; phases without records are left out. Retraining
        records come from ``run_dir`` or, when it has none, from ``run_dir/retrain``.
    """
    phases = {p: _read_phase(run_dir, p) for p in PHASES}
    sub = os.path.join(run_dir, RETRAIN_SUBDIR)
    if not phases["retrain"] and os.path.isdir(sub):
        phases["retrain"] = _read_phase(sub, "retrain")
    return {p: recs for p, recs in phases.items() if recs}


def series(records: Sequence[Record], key: str) -> Tuple[np.ndarray, np.ndarray]:
    """1-based epochs and values of ``key`` over the records that carry a number for it.

    Parameters
    ----------
    records : sequence of dict
        Epoch records of one phase.
    key : str
        The record field.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Epochs (``epoch + 1``) and float values; both empty when no record has the key.
    """
    pairs = [(r["epoch"] + 1, float(r[key])) for r in records
             if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    if not pairs:
        return np.zeros(0, dtype=int), np.zeros(0)
    epochs, values = zip(*pairs)
    return np.asarray(epochs, dtype=int), np.asarray(values, dtype=float)


def stage_sizes(run_dir: str, n_blocks: int) -> Optional[List[int]]:
    """Search blocks per stage from the run's ``config.yaml`` (``model.blocks``).

    Returns
    -------
    list of int or None
        The sizes when the config exists and they add up to ``n_blocks``; otherwise ``None``
        (the stage marks are decoration, so an unreadable config only drops them).
    """
    path = os.path.join(run_dir, CONFIG_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            blocks = (yaml.safe_load(f) or {}).get("model", {}).get("blocks")
        sizes = [int(b) for b in blocks]
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as err:
        log.debug("no stage sizes from %s: %s", path, err)
        return None
    return sizes if sum(sizes) == n_blocks and all(s > 0 for s in sizes) else None
