"""Fashion-MNIST (Xiao et al. 2017) from its four idx files, gzip-compressed or raw.

An idx file is a 4-byte magic ``00 00 TT NN`` (``TT`` the element type, 0x08 for
unsigned bytes; ``NN`` the number of dimensions), ``NN`` big-endian uint32 sizes, then
the row-major data. Both files of a split are validated against each other.
"""
from __future__ import annotations

import gzip
import logging
import os
import zlib
from typing import Tuple

import numpy as np

from ..errors import DatasetNotFoundError, UserError

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
NUM_CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_UBYTE = 0x08
_HINT = ("run `apt-get install dataset-fashion-mnist` or set data.root=DIR "
         "to a folder holding the four idx files")


def find_idx(root: str, stem: str) -> str:
    """Path of ``stem`` or ``stem.gz`` in ``root`` (raw first); DatasetNotFoundError if neither."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise DatasetNotFoundError(
        f"Fashion-MNIST file not found: {os.path.join(root, stem)}[.gz]; {_HINT}")


def parse_idx(raw: bytes, path: str) -> np.ndarray:
    """Decode the bytes of an unsigned-byte idx file; ``path`` only names it in errors."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or raw[3] == 0:
        raise UserError(f"corrupt idx file {path}: bad magic 0x{bytes(raw[:4]).hex()} "
                        f"(expected 0x000008NN, unsigned bytes)")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise UserError(f"corrupt idx file {path}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", raw[3], 4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != size:
        raise UserError(f"corrupt idx file {path}: header says {dims} = {size} bytes, "
                        f"file holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, size, header).reshape(dims)


def read_idx(path: str) -> np.ndarray:
    """Read an idx file (gzip if the name ends in ``.gz``) into a writable uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = bytearray(f.read())
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read idx file {path}: {exc}") from None
    return parse_idx(raw, path)


def load_split(root: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28, 1)`` uint8 and labels ``(N,)`` int32 of ``split`` ('train'/'test')."""
    img_path, lab_path = (find_idx(root, stem) for stem in FILES[split])
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3:
        raise UserError(f"corrupt idx file {img_path}: expected 3 dimensions, got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise UserError(f"corrupt idx file {lab_path}: expected {len(images)} labels, "
                        f"got shape {labels.shape}")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise UserError(f"corrupt idx file {lab_path}: label {labels.max()} >= {NUM_CLASSES}")
    return images[..., None], labels.astype(np.int32)


def check_fashion_mnist(root: str = DEFAULT_ROOT) -> None:
    """Raise ``DatasetNotFoundError`` unless ``root`` holds the four idx files (reads nothing)."""
    root = root or DEFAULT_ROOT
    if not os.path.isdir(root):
        raise DatasetNotFoundError(f"Fashion-MNIST folder not found: {root}; {_HINT}")
    for stems in FILES.values():
        for stem in stems:
            find_idx(root, stem)


def load_fashion_mnist(root: str = DEFAULT_ROOT):
    """``(train_x, train_y, test_x, test_y)`` from the idx files in ``root``."""
    root = root or DEFAULT_ROOT
    check_fashion_mnist(root)
    train_x, train_y = load_split(root, "train")
    test_x, test_y = load_split(root, "test")
    log.info("Fashion-MNIST from %s: %d train, %d test", root, len(train_x), len(test_x))
    return train_x, train_y, test_x, test_y
