"""Runs a study: every (arm, seed) in its own folder, resumable, one run at a time.

Layout under the study's ``output_dir``::

    <arm>/seed<k>/search/     a search arm's search (pre-train, search, derive)
    <arm>/seed<k>/retrain/    every arm's retraining and its result.json

A seed's searches run before its retrainings (a random baseline copies the edge counts of
that seed's searched architecture). What has a ``result.json`` is skipped; a folder with a
checkpoint is resumed; so a killed study continues where it stopped.

Each search and retraining runs as its own ``dso-nas`` process: in one long-lived process
MXNet's CPU steps slowed down run after run (a retraining epoch took 25 s in a fresh process
and 50 s as the second run of the same process, same net and widths).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

from ..config import load_config
from ..data import check_dataset
from ..errors import ConfigError, UserError
from ..paths import check_output
from ..run.checkpoint import atomic_write_bytes
from ..run.folder import ARCH_FILE, RESULT_FILE, RETRAIN_CKPT, SEARCH_CKPT
from ..run.nets import retrain_arch
from ..run.parts import parts_of
from ..runlog import phase_seconds
from ..spaces import get_space
from ..spaces.archfile import load_architecture, save_architecture, space_override
from .plan import Arm, Study

__all__ = ["check_plan", "run_study", "run_dir", "STUDY_FILE"]

LOG = logging.getLogger("dso_nas")
STUDY_FILE = "study.json"


def run_dir(study: Study, arm: str, seed: int, phase: str) -> str:
    """The folder of one (arm, seed)'s ``phase`` (``search`` or ``retrain``)."""
    return os.path.join(study.output_dir, arm, f"seed{seed}", phase)


def _dso_nas(*args: str) -> None:
    """Run ``dso-nas ARGS`` in a fresh process; its one-line error becomes a ``UserError``."""
    last = ""
    with subprocess.Popen([sys.executable, "-m", "dso_nas", *args], stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:  # passed through, the last line kept for the error
            sys.stderr.write(line)
            last = line.strip() or last
    if proc.returncode != 0:
        raise UserError(f"dso-nas {args[0]} {' '.join(args[1:3])} failed (exit {proc.returncode}): {last}")


def _search(study: Study, arm: Arm, seed: int) -> str:
    folder = run_dir(study, arm.name, seed, "search")
    if os.path.exists(os.path.join(folder, SEARCH_CKPT)):
        _dso_nas("search", "--resume", folder)  # returns at once when it has finished
    else:
        _dso_nas("search", "--config", study.config, *study.search_overrides, *arm.search, *study.extra,
                 f"seed={seed}", f"output_dir={folder}")
    return os.path.join(folder, ARCH_FILE)


def _arch_file(study: Study, arm: Arm, seed: int) -> str:
    """The architecture file the arm retrains for ``seed`` (written for a baseline)."""
    if arm.kind == "search":
        return os.path.join(run_dir(study, arm.name, seed, "search"), ARCH_FILE)
    if arm.kind == "arch":
        return arm.arch
    path = os.path.join(study.output_dir, arm.name, f"seed{seed}", "baseline.yaml")
    if not os.path.exists(path):
        cfg = load_config(study.config, [*study.search_overrides, *study.extra])
        like = load_architecture(os.path.join(run_dir(study, arm.like, seed, "search"), ARCH_FILE)) if arm.like else None
        arch = get_space(cfg.model.space).baseline(arm.baseline, cfg, keep_rate=0.5, seed=seed, like=like)
        save_architecture(arch, path)
    return path


def _retrain(study: Study, arm: Arm, seed: int) -> Dict[str, Any]:
    folder = run_dir(study, arm.name, seed, "retrain")
    result_path = os.path.join(folder, RESULT_FILE)
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as f:
            return json.load(f)
    if os.path.exists(os.path.join(folder, RETRAIN_CKPT)):
        _dso_nas("retrain", "--resume", folder)
    else:
        arch_path = _arch_file(study, arm, seed)
        space = [f"model.space={load_architecture(arch_path).to_dict()['space']}"] if arm.kind == "arch" else []
        _dso_nas("retrain", "--config", study.config, "--arch", arch_path, *study.retrain_overrides, *space,
                 *arm.retrain, *study.extra, f"seed={seed}", f"output_dir={folder}")
    with open(result_path, encoding="utf-8") as f:
        return json.load(f)


def _record(study: Study, seed: int, arm: Arm, result: Dict[str, Any]) -> Dict[str, Any]:
    search_dir = run_dir(study, arm.name, seed, "search")
    search_seconds = sum(phase_seconds(search_dir).values()) if arm.kind == "search" else 0.0
    split = result.get("eval_split", "test")
    return {"arm": arm.name, "seed": seed, "kind": arm.kind, "error": result[f"{split}_error"],
            "acc": result[f"{split}_acc"], "eval_split": split, "params": result["params"], "flops": result["flops"],
            "width_mult": result["width_mult"], "retrain_seconds": result.get("retrain_seconds", 0.0),
            "search_seconds": search_seconds, "arch": _arch_file(study, arm, seed)}


def write_study(study: Study, records: List[Dict[str, Any]], wall: float) -> str:
    """Write ``study.json`` (every finished run's record, and ``wall``: the seconds this study's
    invocations have run, summed over restarts) atomically; its path."""
    path = os.path.join(study.output_dir, STUDY_FILE)
    body = {"study": study.path, "config": study.config, "seeds": list(study.seeds),
            "arms": [{"name": a.name, "label": a.label, "kind": a.kind} for a in study.arms],
            "claims": [{"name": c.name, "better": c.better, "worse": c.worse, "paper": list(c.paper)}
                       for c in study.claims],
            "paper": {k: list(v) for k, v in study.paper.items()}, "wall_seconds": wall, "runs": records}
    atomic_write_bytes(path, json.dumps(body, indent=2).encode())
    return path


def _check_arm(study: Study, arm: Arm) -> None:
    """The configs of ``arm``'s runs load, its baseline kind or architecture file fits them,
    and their dataset is there."""
    tail = [*arm.retrain, *study.extra]
    if arm.kind == "search":
        cfg = load_config(study.config, [*study.search_overrides, *arm.search, *study.extra])
        check_dataset(cfg.data.name, cfg.data.root)
    elif arm.kind == "baseline":
        space = get_space(load_config(study.config, [*study.search_overrides, *study.extra]).model.space)
        if arm.baseline not in space.baseline_kinds:
            raise ConfigError(f"baseline {arm.baseline!r} is not one of the {space.name} space's: "
                              f"{', '.join(space.baseline_kinds) or 'none'}")
    else:
        arch = load_architecture(arm.arch)
        tail = [space_override(arch), *tail]
    cfg = load_config(study.config, [*study.retrain_overrides, *tail])
    if arm.kind == "arch":
        retrain_arch(arch, cfg, parts_of(cfg))
    check_dataset(cfg.data.name, cfg.data.root)


def check_plan(study: Study) -> None:
    """Every run the study would start, checked before the first one starts: each arm's search
    and retraining configs load (unknown keys, bad values), a baseline kind is one of the
    space's, an architecture file reads and fits its retraining config, the datasets are there
    and the output folder can be written; one line naming the study and the arm."""
    check_output(study.output_dir, "output_dir")
    for arm in study.arms:
        try:
            _check_arm(study, arm)
        except UserError as e:
            raise type(e)(f"study {study.path}: arm {arm.name!r}: {e}") from None


def run_study(study: Study) -> List[Dict[str, Any]]:
    """Run (or continue) every (arm, seed), the whole plan checked first (:func:`check_plan`);
    returns the records, also in ``study.json``."""
    check_plan(study)
    os.makedirs(study.output_dir, exist_ok=True)
    prior = os.path.join(study.output_dir, STUDY_FILE)
    wall0 = 0.0
    if os.path.exists(prior):
        with open(prior, encoding="utf-8") as f:
            wall0 = float(json.load(f).get("wall_seconds", 0.0))
    t0, records = time.time(), []
    todo = len(study.seeds) * len(study.arms)
    for seed in study.seeds:
        for arm in study.arms:
            if arm.kind == "search":
                LOG.info("study: search %s seed %d", arm.name, seed)
                _search(study, arm, seed)
        for arm in study.arms:
            LOG.info("study: retrain %s seed %d (%d of %d)", arm.name, seed, len(records) + 1, todo)
            records.append(_record(study, seed, arm, _retrain(study, arm, seed)))
            write_study(study, records, wall0 + time.time() - t0)
    return records
