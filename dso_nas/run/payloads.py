"""Typed checkpoint payloads: what a search and a retraining save, and how they come back.

A payload is a dataclass with a ``kind`` and a ``version``; :func:`save_payload` pickles its
fields atomically (:mod:`dso_nas.run.checkpoint`), :func:`load_payload` refuses a file of
another kind or a newer version in one line. Version 1 files (written before the payloads
were typed) hold the same fields and load as they are.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Dict, List, Optional, Type, TypeVar

from ..errors import CheckpointError
from . import checkpoint as ckpt

__all__ = ["PAYLOAD_VERSION", "SearchPayload", "RetrainPayload", "save_payload", "load_payload"]

PAYLOAD_VERSION = 2
P = TypeVar("P", "SearchPayload", "RetrainPayload")


@dataclass
class SearchPayload:
    """A search run: pre-training, search and derivation (``phase``), resumable mid-epoch."""

    kind: ClassVar[str] = "search"
    config: Dict[str, Any]
    net: Dict[str, Any]
    pre_trainer: Optional[bytes]
    w_trainer: Optional[bytes]
    lam_trainer: Optional[bytes]
    phase: str
    epoch: int
    position: int
    history: List[List[Any]]
    unchanged: int
    support: Optional[List[List[int]]]
    elapsed: Dict[str, float]
    seed: int
    version: int = PAYLOAD_VERSION


@dataclass
class RetrainPayload:
    """A retraining run of one architecture, resumable mid-epoch; ``done`` with its result."""

    kind: ClassVar[str] = "retrain"
    config: Dict[str, Any]
    arch: Dict[str, Any]
    width_mult: float
    net: Dict[str, Any]
    trainer: Optional[bytes]
    epoch: int
    position: int
    elapsed: float
    done: bool
    result: Optional[Dict[str, Any]]
    seed: int
    version: int = PAYLOAD_VERSION


def save_payload(path: str, payload: Any) -> None:
    """Write ``payload`` (its fields plus ``kind``) atomically to ``path``."""
    ckpt.save_checkpoint(path, dict(asdict(payload), kind=payload.kind))


def load_payload(path: str, cls: Type[P]) -> P:
    """Read a checkpoint of ``cls``'s kind.

    Raises
    ------
    CheckpointError
        Missing, unreadable, of another kind, of a newer version, or lacking fields.
    """
    raw = ckpt.load_checkpoint(path)
    if raw.get("kind") != cls.kind:
        raise CheckpointError(f"{path} is a {raw.get('kind')} checkpoint, not a {cls.kind} one")
    version = int(raw.get("version", 1))
    if version > PAYLOAD_VERSION:
        raise CheckpointError(f"{path} has payload version {version}; this dso_nas reads up to {PAYLOAD_VERSION}")
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in raw and n != "version"]
    if missing:
        raise CheckpointError(f"{path} lacks the {cls.kind} checkpoint field(s) {missing[:3]}")
    return cls(**{n: raw[n] for n in names if n in raw and n != "version"}, version=version)
