"""RecordIO files (MXNet's ImageNet format): checking, reading headers, copying subsets.

A record file ``X.rec`` is a sequence of records, each an 8-byte header (the magic
``0xced7230a`` and a length word whose low 29 bits are the payload length) followed by the
payload padded to 4 bytes; ``X.idx`` has one ``key<TAB>offset`` line per record, as
``mxnet/tools/im2rec.py`` and ``mx.recordio.MXIndexedRecordIO`` write them. The payload of an
image record is an ``IRHeader`` (flag, label, id, id2) and the encoded image.

:func:`check_record_file` validates a pair cheaply (no image is decoded), so a truncated or
mismatched file ends in one line naming it instead of a C++ abort inside the iterator.
:func:`copy_records` writes a subset as a new pair, byte for byte, atomically; the D_w / D_λ
split (:func:`split_record_file`) is two such copies, as the authors' release wrote
``train1.rec`` / ``train2.rec``. A subset cannot be a shorter ``.idx`` over the same ``.rec``:
the iterator takes each record's extent from the next listed offset.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..errors import DatasetNotFoundError, UserError
from ..runlog import progress

__all__ = ["RecordFile", "check_record_file", "read_index", "copy_records", "cached_subset", "split_record_file",
           "record_label", "writable_dir"]

MAGIC = 0xCED7230A
#: At most this many record headers are read to check an index (ImageNet's 1.28M are sampled).
CHECKED_OFFSETS = 4096
_LEN_MASK = (1 << 29) - 1


@dataclass(frozen=True)
class RecordFile:
    """A checked ``.rec`` / ``.idx`` pair: paths and the index keys in file order."""

    rec: str
    idx: str
    keys: Tuple[int, ...]

    def __len__(self) -> int:
        return len(self.keys)


def read_index(idx: str) -> List[Tuple[int, int]]:
    """``[(key, offset), ...]`` of an ``.idx`` file in its line order (one line per record)."""
    entries = []
    try:
        with open(idx, "r") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise UserError(f"malformed RecordIO index {idx}: line {n} is not 'key<TAB>offset'")
                entries.append((int(parts[0]), int(parts[1])))
    except ValueError:
        raise UserError(f"malformed RecordIO index {idx}: a key or offset is not an integer") from None
    except OSError as exc:
        raise DatasetNotFoundError(f"cannot read RecordIO index {idx}: {exc.strerror}") from None
    return entries


def _record_end(f, rec: str, offset: int) -> int:
    f.seek(offset)
    head = f.read(8)
    if len(head) < 8:
        raise UserError(f"truncated RecordIO file {rec}: the index points past its end (offset {offset})")
    magic, lrec = struct.unpack("<II", head)
    if magic != MAGIC:
        raise UserError(f"corrupt RecordIO file {rec}: no record starts at offset {offset} (index and file differ)")
    return offset + 8 + (lrec & _LEN_MASK)


def check_record_file(rec: str, idx: str) -> RecordFile:
    """A :class:`RecordFile` for ``rec`` + ``idx``, or one ``UserError`` line naming the bad file.

    Checks: both exist, the index parses, offsets are distinct and inside the file, a record
    starts at every offset (at up to :data:`CHECKED_OFFSETS` of them, evenly spaced, always
    the first and the last, for a big file) and the last one ends inside the file.
    """
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise DatasetNotFoundError(f"RecordIO file missing: {path}")
    entries = read_index(idx)
    if not entries:
        raise UserError(f"empty RecordIO index {idx}")
    size = os.path.getsize(rec)
    offsets = sorted(o for _, o in entries)
    if offsets[0] < 0 or offsets[-1] >= size:
        raise UserError(f"truncated RecordIO file {rec}: {idx} points to offset {offsets[-1]} of a {size}-byte file")
    if len(set(offsets)) != len(offsets):
        raise UserError(f"malformed RecordIO index {idx}: two records share an offset")
    step = max(1, len(offsets) // CHECKED_OFFSETS)
    with open(rec, "rb") as f:
        for offset in offsets[::step]:
            _record_end(f, rec, offset)
        if _record_end(f, rec, offsets[-1]) > size:
            raise UserError(f"truncated RecordIO file {rec}: its last record ends past the end of the file")
    return RecordFile(rec, idx, tuple(k for k, _ in entries))


def record_label(payload: bytes) -> float:
    """The (first) label of an image record's payload."""
    return float(mx.recordio.unpack(payload)[0].label)


def copy_records(src: RecordFile, keys: Sequence[int], prefix: str, desc: str = "copy") -> RecordFile:
    """Copy the records ``keys`` of ``src`` (in that order, renumbered 0..K-1) to
    ``prefix.rec`` / ``prefix.idx``; written under temporary names, then renamed."""
    tmp_rec, tmp_idx = f"{prefix}.rec.tmp", f"{prefix}.idx.tmp"
    reader = mx.recordio.MXIndexedRecordIO(src.idx, src.rec, "r")
    writer = mx.recordio.MXIndexedRecordIO(tmp_idx, tmp_rec, "w")
    try:
        for new_key, key in enumerate(progress(keys, total=len(keys), desc=desc)):
            writer.write_idx(new_key, reader.read_idx(int(key)))
    finally:
        writer.close()
        reader.close()
    os.replace(tmp_rec, f"{prefix}.rec")
    os.replace(tmp_idx, f"{prefix}.idx")
    return check_record_file(f"{prefix}.rec", f"{prefix}.idx")


def _manifest_ok(path: str, want: Dict) -> bool:
    try:
        with open(path) as f:
            return json.load(f) == want
    except (OSError, ValueError):
        return False


def cached_subset(src: RecordFile, keys: Sequence[int], prefix: str, what: Dict, desc: str) -> RecordFile:
    """:func:`copy_records` unless ``prefix.json`` says an identical copy is there already
    (same source size and mtime, same keys); the manifest is written last."""
    want = {"source": os.path.abspath(src.rec), "source_bytes": os.path.getsize(src.rec),
            "source_mtime": int(os.path.getmtime(src.rec)), "records": len(keys), **what,
            "keys_checksum": int(np.asarray(keys, dtype=np.int64).sum() % (1 << 61))}
    manifest = f"{prefix}.json"
    if _manifest_ok(manifest, want) and os.path.isfile(f"{prefix}.rec") and os.path.isfile(f"{prefix}.idx"):
        return check_record_file(f"{prefix}.rec", f"{prefix}.idx")
    out = copy_records(src, keys, prefix, desc)
    with open(manifest + ".tmp", "w") as f:
        json.dump(want, f, indent=1)
    os.replace(manifest + ".tmp", manifest)
    return out


def writable_dir(path: str, key: str) -> str:
    """Make ``path`` (for config ``key``) or end in one line saying it cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise UserError(f"cannot write to {path} ({exc.strerror}); set {key}=DIR to a writable folder") from None
    return path


def split_record_file(src: RecordFile, cache: str, *, weight_fraction: float, seed: int,
                      indices: Tuple[np.ndarray, np.ndarray], limit: int = 0) -> Tuple[RecordFile, RecordFile]:
    """D_w and D_λ of ``src`` as two record files in ``cache``: the first ``limit`` records
    (0 = all) split by ``indices`` (``(idx_w, idx_lam)`` positions; see
    :func:`dso_nas.data.split_indices`). Reused when an identical split is already there."""
    n = len(src) if limit <= 0 else min(limit, len(src))
    idx_w, idx_lam = indices
    tag = f"seed{seed}-w{weight_fraction:g}-n{n}"
    what = {"seed": seed, "weight_fraction": weight_fraction, "limit": n}
    w = cached_subset(src, [src.keys[i] for i in idx_w], os.path.join(cache, f"train_w-{tag}"),
                      {**what, "part": "D_w"}, "split D_w")
    lam = cached_subset(src, [src.keys[i] for i in idx_lam], os.path.join(cache, f"train_lam-{tag}"),
                        {**what, "part": "D_lambda"}, "split D_λ")
    return w, lam
