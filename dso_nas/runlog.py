"""Run logs: logging to console and ``run.log``, the epoch records of ``log.jsonl`` (written,
read back, phase seconds) and progress bars. Creating and opening run folders is
:mod:`dso_nas.run.folder`."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, TypeVar

from tqdm import tqdm

LOG = logging.getLogger("dso_nas")
T = TypeVar("T")

JSONL_NAME = "log.jsonl"
CONFIG_NAME = "config.yaml"


def setup_logging(run_dir: Optional[str] = None, level: int = logging.INFO, tag: str = "") -> None:
    """Log to stderr and, when ``run_dir`` is given, append to ``run_dir/run.log``; ``tag``
    prefixes every message (a distributed run's other workers)."""
    root = logging.getLogger("dso_nas")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter(f"%(asctime)s %(levelname)s {'[' + tag + '] ' if tag else ''}%(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    if run_dir:
        os.makedirs(run_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(run_dir, "run.log"))
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    root.propagate = False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def write_jsonl(run_dir: str, record: Dict[str, Any]) -> None:
    """Append one JSON line (an epoch's record) to ``run_dir/log.jsonl``."""
    record = dict(record)
    record.setdefault("time", round(time.time(), 3))
    with open(os.path.join(run_dir, JSONL_NAME), "a", encoding="utf-8") as f:
        f.write(json.dumps(_jsonable(record), sort_keys=False) + "\n")


def read_jsonl(run_dir: str, phase: Optional[str] = None) -> List[Dict[str, Any]]:
    """Read back the epoch records, optionally only those of one ``phase``.

    When a resumed run rewrote an epoch, the last record of each (phase, epoch) wins.
    """
    path = os.path.join(run_dir, JSONL_NAME)
    if not os.path.exists(path):
        return []
    records: Dict[Any, Dict[str, Any]] = {}
    with open(path, "r", encoding="utf-8", errors="replace") as f:  # a damaged line is skipped below
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill mid-write
                LOG.warning("skipping a malformed line in %s", path)
                continue
            if phase is None or rec.get("phase") == phase:
                records[(rec.get("phase"), rec.get("epoch"), len(records) if rec.get("epoch") is None else 0)] = rec
    return list(records.values())


def progress(items: Iterable[T], *, total: Optional[int] = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """A tqdm bar over ``items``; silent when disabled or stderr is not a terminal."""
    show = enabled and sys.stderr.isatty()
    return iter(tqdm(items, total=total, desc=desc, leave=False, disable=not show, dynamic_ncols=True))


def phase_seconds(run_dir: str, phases: Iterable[str] = ("pretrain", "search")) -> Dict[str, float]:
    """Seconds each phase has run (its last epoch record's cumulative ``seconds``; 0 if none)."""
    recs = read_jsonl(run_dir)
    return {p: max([r.get("seconds", 0.0) for r in recs if r.get("phase") == p] or [0.0]) for p in phases}

