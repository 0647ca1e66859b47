"""Loaders: the :class:`Loader` protocol and the in-memory :class:`ArrayLoader`.

Every loader the loops read has ``len(loader)`` (batches per epoch), ``epoch(e, start)``
(batches ``start, start + 1, ...`` of epoch ``e``, a pure function of the loader's seed, ``e``
and the batch index) and ``shard(rank, world)`` (the rank's part of every batch, for
several workers). The RecordIO and segmentation loaders implement the same three.

:class:`ArrayLoader` is a reproducible, resumable batch iterator over in-memory uint8 image
arrays.

Every random choice is a pure function of ``(seed, epoch, batch)``: the order of epoch
``e`` comes from ``np.random.default_rng([seed, e])`` and the augmentation of its batch
``k`` from ``np.random.default_rng([seed, e, k, 1])``. Batch ``k`` of epoch ``e`` is
therefore bit-identical whether the run started at epoch 0 or resumed from a
checkpoint taken just before it. No global RNG is used.

Batches are converted and normalised with ``mx.nd.image.to_tensor`` and
``mx.nd.image.normalize`` (the ops behind gluon's ``transforms.ToTensor`` /
``transforms.Normalize``): ``(x / 255 - mean) / std`` per channel, NHWC -> NCHW.
"""
from __future__ import annotations

from typing import Iterator, Optional, Protocol, Sequence, Tuple, runtime_checkable

import mxnet as mx
import numpy as np

from ..errors import ConfigError
from .augment import Augment

Batch = Tuple[mx.nd.NDArray, mx.nd.NDArray]

__all__ = ["Batch", "Loader", "ArrayLoader", "ShardedLoader", "shard_bounds"]


@runtime_checkable
class Loader(Protocol):
    """What the training loops read (see the module docstring)."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...

    def shard(self, rank: int, world: int) -> "Loader": ...


def shard_bounds(size: int, rank: int, world: int) -> Tuple[int, int]:
    """``[begin, end)`` of rank ``rank``'s rows in a batch of ``size`` split over ``world``
    parts, as ``gluon.utils.split_and_load(..., even_split=False)`` splits over contexts
    (equal parts, the last one takes the remainder)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    step = size // world
    return rank * step, (size if rank == world - 1 else (rank + 1) * step)


class ArrayLoader:
    """Batches of ``(data, label)`` from ``x`` (N, H, W, C) uint8 and integer labels ``y``.

    Parameters
    ----------
    x, y : np.ndarray
        Images ``(N, H, W, C)`` uint8 and labels ``(N,)``.
    batch_size : int
        Images per batch.
    shuffle : bool
        Draw a fresh permutation each epoch (else keep the array order).
    augment : Augment or None
        Training augmentation; None for evaluation.
    mean, std : sequence of float
        Per-channel statistics in [0, 1] units.
    seed : int
        Non-negative seed of every random choice of this loader.
    drop_last : bool
        Drop the final incomplete batch.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool,
                 augment: Optional[Augment], mean: Sequence[float], std: Sequence[float],
                 seed: int, drop_last: bool = False):
        if x.ndim != 4 or x.dtype != np.uint8 or len(y) != len(x):
            raise ValueError(f"expected uint8 (N, H, W, C) images and N labels, got "
                             f"{x.dtype} {x.shape} and {np.shape(y)}")
        if batch_size <= 0 or seed < 0:
            raise ConfigError(f"batch size must be > 0 and seed >= 0, got {batch_size}, {seed}")
        if len(mean) != x.shape[3] or len(std) != x.shape[3]:
            raise ValueError(f"need {x.shape[3]} channel statistics, got {mean}, {std}")
        self.x, self.y = x, np.asarray(y, dtype=np.float32)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        self.seed, self.drop_last = seed, drop_last

    @property
    def num_samples(self) -> int:
        """Number of images the loader iterates."""
        return len(self.x)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> np.ndarray:
        """Sample order of ``epoch``."""
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Yield batches ``start, start + 1, ...`` of ``epoch``.

        Returns
        -------
        iterator of (mx.nd.NDArray, mx.nd.NDArray)
            Float32 normalised NCHW data and float32 labels, on the CPU.
        """
        if epoch < 0 or not 0 <= start <= len(self):
            raise ValueError(f"epoch {epoch} / start batch {start} out of range (0..{len(self)})")
        order = self.order(epoch)
        for k in range(start, len(self)):
            yield self._batch(order[k * self.batch_size:(k + 1) * self.batch_size], epoch, k)

    def _batch(self, idx: np.ndarray, epoch: int, k: int) -> Batch:
        images = self.x[idx]
        mask = None
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, k, 1])
            images = self.augment(images, rng)
            mask = self.augment.cutout_mask(*images.shape[:3], rng)
        data = mx.nd.image.to_tensor(mx.nd.array(images, dtype=np.uint8))
        data = mx.nd.image.normalize(data, mean=self.mean, std=self.std)
        if mask is not None:
            data = data * mx.nd.array(mask)
        return data, mx.nd.array(self.y[idx])

    def shard(self, rank: int, world: int) -> "ShardedLoader":
        """Rank ``rank``'s part of every batch when ``world`` workers share this loader."""
        return ShardedLoader(self, rank, world)


class ShardedLoader:
    """One worker's rows of every batch of a loader: the global batch order and augmentation
    are those of the whole loader, so ``world`` shards together see exactly what one process
    sees (each shard builds the whole batch and keeps its rows: cheap for in-memory arrays).
    """

    def __init__(self, base: ArrayLoader, rank: int, world: int):
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"need 0 <= rank < world, got rank {rank}, world {world}")
        if base.batch_size < world:
            raise ConfigError(f"a batch of {base.batch_size} cannot be split over {world} workers")
        self.base, self.rank, self.world = base, rank, world

    def __len__(self) -> int:
        return len(self.base)

    @property
    def num_samples(self) -> int:
        """Images the whole loader iterates (all shards together)."""
        return self.base.num_samples

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """This rank's rows of batches ``start, start + 1, ...`` of ``epoch``."""
        for data, label in self.base.epoch(epoch, start):
            begin, end = shard_bounds(data.shape[0], self.rank, self.world)
            yield data[begin:end], label[begin:end]

    def shard(self, rank: int, world: int) -> "ShardedLoader":
        raise ValueError("a sharded loader cannot be sharded again")
