"""CIFAR-10 (Krizhevsky 2009) from either official distribution, never downloaded.

* ``cifar-10-batches-py``: ``data_batch_1..5`` and ``test_batch``, pickled dicts whose
  ``b'data'`` is an ``(N, 3072)`` uint8 array and ``b'labels'`` a list of ints;
* ``cifar-10-batches-bin``: ``data_batch_1.bin..5.bin`` and ``test_batch.bin``, records
  of one label byte followed by 3072 pixel bytes.

In both, an image is channel-planar: 1024 red bytes, then green, then blue, each plane
32x32 row-major. The pickles are read with an unpickler that admits only the numpy
globals an array needs (and ``_codecs.encode``, which protocol-2 pickles written by
Python 3 use for bytes), so a hostile file cannot run code.
"""
from __future__ import annotations

import logging
import os
import pickle
from typing import Tuple

import numpy as np

from ..errors import DatasetNotFoundError, UserError

log = logging.getLogger(__name__)

NUM_CLASSES = 10
SIDE, CHANNELS = 32, 3
PIXELS = SIDE * SIDE * CHANNELS
FOLDERS = ("cifar-10-batches-py", "cifar-10-batches-bin")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_HINT = ("set data.root=DIR to a cifar-10-batches-py or cifar-10-batches-bin folder "
         "(or their parent)")
_SAFE_GLOBALS = {(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
                 for name in ("_reconstruct", "scalar")}
_SAFE_GLOBALS |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)


def locate(root: str) -> Tuple[str, str]:
    """``(folder, suffix)`` of the batches in or under ``root`` ('' pickles, '.bin' binary)."""
    if not root:
        raise DatasetNotFoundError(f"CIFAR-10 has no default location (the defaults are the paper's CIFAR-10 "
                                   f"setting; for the embedded default use --config "
                                   f"experiments/fashion_mnist/search.yaml); {_HINT}")
    for folder in (root, *(os.path.join(root, name) for name in FOLDERS)):
        for suffix in ("", ".bin"):
            if os.path.isfile(os.path.join(folder, TRAIN_BATCHES[0] + suffix)):
                return folder, suffix
    raise DatasetNotFoundError(f"CIFAR-10 not found in {root} (no data_batch_1[.bin] there or in "
                               f"{' or '.join(FOLDERS)}/); {_HINT}")


def planar_to_nhwc(flat: np.ndarray) -> np.ndarray:
    """``(N, 3072)`` channel-planar rows to a contiguous ``(N, 32, 32, 3)`` array."""
    return np.ascontiguousarray(flat.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1))


def read_py_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Flat pixels ``(N, 3072)`` and labels of one pickled batch."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    except (OSError, EOFError, pickle.UnpicklingError, TypeError, KeyError, ValueError,
            AttributeError, IndexError) as exc:
        raise UserError(f"corrupt CIFAR-10 batch {path}: {exc!r}") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS or labels.shape != (len(data),):
        raise UserError(f"corrupt CIFAR-10 batch {path}: expected uint8 data (N, {PIXELS}) "
                        f"and N labels")
    return data, labels


def read_bin_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Flat pixels ``(N, 3072)`` and labels of one binary batch."""
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise UserError(f"cannot read CIFAR-10 batch {path}: {exc}") from None
    if raw.size == 0 or raw.size % (PIXELS + 1):
        raise UserError(f"corrupt CIFAR-10 batch {path}: {raw.size} bytes is not a whole "
                        f"number of {PIXELS + 1}-byte records")
    records = raw.reshape(-1, PIXELS + 1)
    return records[:, 1:], records[:, 0]


def check_cifar10(root: str) -> Tuple[str, str]:
    """:func:`locate`, then ``DatasetNotFoundError`` unless every batch file is there (reads
    nothing); returns ``(folder, suffix)``."""
    folder, suffix = locate(root)
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        path = os.path.join(folder, name + suffix)
        if not os.path.isfile(path):
            raise DatasetNotFoundError(f"CIFAR-10 batch file missing: {path}; {_HINT}")
    return folder, suffix


def read_batches(folder: str, names, suffix: str) -> Tuple[np.ndarray, np.ndarray]:
    """NHWC uint8 images and int32 labels of the named batches (checked to exist by
    :func:`check_cifar10`), concatenated."""
    reader = read_bin_batch if suffix else read_py_batch
    parts = []
    for name in names:
        path = os.path.join(folder, name + suffix)
        data, labels = reader(path)
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise UserError(f"corrupt CIFAR-10 batch {path}: labels outside 0..{NUM_CLASSES - 1}")
        parts.append((data, labels))
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int32)
    return planar_to_nhwc(data), labels


def load_cifar10(root: str):
    """``(train_x, train_y, test_x, test_y)``; ``root`` is a batches folder or its parent."""
    folder, suffix = check_cifar10(root)
    train_x, train_y = read_batches(folder, TRAIN_BATCHES, suffix)
    test_x, test_y = read_batches(folder, (TEST_BATCH,), suffix)
    log.info("CIFAR-10 from %s: %d train, %d test", folder, len(train_x), len(test_x))
    return train_x, train_y, test_x, test_y
