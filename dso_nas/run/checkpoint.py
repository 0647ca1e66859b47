"""Atomic checkpoint files and the pieces they hold (network arrays, Trainer states).

What a search or a retraining puts in one is typed in :mod:`dso_nas.run.payloads`. A
checkpoint is one pickle file written to a temporary name in the same folder and
renamed over the old one (``os.replace`` is atomic on POSIX), so a run killed at any
moment leaves either the previous or the new checkpoint, never a torn one. The file starts
with :data:`MAGIC` and the SHA-256 of the pickle, so a file damaged later (a flipped byte on
disk) is refused in one line instead of loading wrong weights; files written before the
checksum (a bare pickle) still load.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from typing import Any, Dict, Optional

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import CheckpointError
from ..paths import atomic_write_bytes  # re-exported: the run modules write through it

FORMAT_VERSION = 1
#: First bytes of a checksummed checkpoint; the 32-byte SHA-256 of the pickle follows.
MAGIC = b"DSONAS-CKPT-SHA256\n"


def save_checkpoint(path: str, payload: Dict[str, Any]) -> None:
    """Pickle ``payload`` (plus a format version) to ``path`` atomically."""
    data = pickle.dumps(dict(payload, format_version=FORMAT_VERSION), protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_bytes(path, MAGIC + hashlib.sha256(data).digest() + data)


def check_checkpoint_file(path: str) -> None:
    """``CheckpointError`` unless ``path`` is a file that starts as a checkpoint does (reads
    its first bytes only: a cheap check before any work)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} is unreadable: {e.strerror}") from None
    if not (head.startswith(MAGIC) or head.startswith(b"\x80")):  # checksummed, or a bare binary pickle
        raise CheckpointError(f"checkpoint {path} is unreadable: it is not a dso_nas checkpoint (a retrain.ckpt "
                              f"or search.ckpt)")


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read a checkpoint; a missing or unreadable file raises :class:`CheckpointError`."""
    check_checkpoint_file(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} is unreadable: {e.strerror}") from None
    if data.startswith(MAGIC):
        digest, data = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
        if hashlib.sha256(data).digest() != digest:
            raise CheckpointError(f"checkpoint {path} is damaged (its checksum does not match its contents)")
    try:
        payload = pickle.loads(data)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"checkpoint {path} is unreadable: {type(e).__name__}: {e}") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} is not a dso_nas checkpoint of format {FORMAT_VERSION}")
    return payload


def net_arrays(net: gluon.Block) -> Dict[str, np.ndarray]:
    """Every parameter of ``net`` as NumPy, keyed by its structural name (stable across runs)."""
    return {k: p.data().asnumpy() for k, p in net._collect_params_with_prefix().items()}  # noqa: SLF001


def load_net_arrays(net: gluon.Block, arrays: Dict[str, np.ndarray], source: str = "checkpoint") -> None:
    """Copy ``arrays`` into ``net``'s parameters; any missing key or shape mismatch is one error line."""
    params = net._collect_params_with_prefix()  # noqa: SLF001
    missing = sorted(set(params) - set(arrays))
    extra = sorted(set(arrays) - set(params))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{source} does not match the network: {what} ({len(missing)} missing, {len(extra)} unexpected)")
    for key, param in params.items():
        value = arrays[key]
        if tuple(param.shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source} does not match the network: '{key}' has shape {tuple(value.shape)}, the config builds {tuple(param.shape)}"
            )
    for key, param in params.items():
        param.set_data(mx.nd.array(arrays[key], dtype=param.dtype))


def trainer_state(trainer: gluon.Trainer) -> Optional[bytes]:
    """The optimizer state of a Gluon trainer (momenta, APG-NAG iterates) as bytes.

    ``None`` before the trainer's first step: it has no state yet (and no kvstore to save from).
    """
    if not trainer._updaters[0].states:  # noqa: SLF001 - Gluon has no public "has stepped"
        return None
    fd, tmp = tempfile.mkstemp(prefix=".trainer-")
    os.close(fd)
    try:
        trainer.save_states(tmp)
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        os.unlink(tmp)


def restore_trainer_state(trainer: gluon.Trainer, state: Optional[bytes]) -> None:
    """Inverse of :func:`trainer_state` (``None`` leaves the fresh trainer as it is)."""
    if state is None:
        return
    fd, tmp = tempfile.mkstemp(prefix=".trainer-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(state)
        trainer.load_states(tmp)
    finally:
        os.unlink(tmp)
