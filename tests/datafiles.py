"""Tiny datasets written in the real on-disk formats, for tests of the data readers.

Each writer returns what it wrote as an :class:`Expected` of NHWC uint8 images and int32
labels, so a test can compare a reader's output pixel for pixel.
"""
from __future__ import annotations

import gzip
import os
import pickle
from typing import NamedTuple, Tuple

import numpy as np


class Expected(NamedTuple):
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def random_images(rng: np.random.Generator, n: int, shape: Tuple[int, int, int]):
    """``n`` random uint8 images of ``shape`` and int32 labels in 0..9."""
    return (rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int32))


def _cifar(folder: str, n_train_per_batch: int, n_test: int, seed: int, write) -> Expected:
    """Write five training batches and a test batch with ``write(path_stem, planar, labels)``."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    parts = [random_images(rng, n_train_per_batch, (32, 32, 3)) for _ in range(5)]
    test = random_images(rng, n_test, (32, 32, 3))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (x, y) in zip(names, parts + [test]):
        write(os.path.join(folder, name), x.transpose(0, 3, 1, 2).reshape(len(x), -1), y)
    return Expected(np.concatenate([p[0] for p in parts]),
                    np.concatenate([p[1] for p in parts]), *test)


def _write_pickle(stem: str, planar: np.ndarray, labels: np.ndarray) -> None:
    batch = {b"batch_label": os.path.basename(stem).encode(), b"labels": labels.tolist(),
             b"data": planar, b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    with open(stem, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _write_records(stem: str, planar: np.ndarray, labels: np.ndarray) -> None:
    np.concatenate([labels.astype(np.uint8)[:, None], planar], axis=1).tofile(stem + ".bin")


def write_cifar_py(folder: str, n_train_per_batch: int = 10, n_test: int = 10,
                   seed: int = 0) -> Expected:
    """A ``cifar-10-batches-py``-format folder (pickled dicts with bytes keys)."""
    return _cifar(folder, n_train_per_batch, n_test, seed, _write_pickle)


def write_cifar_bin(folder: str, n_train_per_batch: int = 10, n_test: int = 10,
                    seed: int = 0) -> Expected:
    """A ``cifar-10-batches-bin``-format folder (1 label byte + 3072 pixel bytes per record)."""
    return _cifar(folder, n_train_per_batch, n_test, seed, _write_records)


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte idx file holding ``array``."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx(folder: str, n_train: int = 10, n_test: int = 10, seed: int = 0,
              gz: bool = True) -> Expected:
    """The four Fashion-MNIST idx files (28x28 images), gzip-compressed if ``gz``."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    train, test = random_images(rng, n_train, (28, 28, 1)), random_images(rng, n_test, (28, 28, 1))
    for prefix, (x, y) in (("train", train), ("t10k", test)):
        for stem, array in ((f"{prefix}-images-idx3-ubyte", x[..., 0]),
                            (f"{prefix}-labels-idx1-ubyte", y)):
            path = os.path.join(folder, stem + (".gz" if gz else ""))
            with (gzip.open if gz else open)(path, "wb") as f:
                f.write(idx_bytes(array))
    return Expected(*train, *test)
