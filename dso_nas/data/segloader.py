"""The segmentation loader: batches of GluonCV segmentation samples behind the
:class:`~dso_nas.data.loader.Loader` protocol.

Training batches come from a GluonCV dataset in ``mode="train"`` (random scale 0.5-2x of
``base_size``, pad, random ``crop_size`` crop, flip, Gaussian blur: GluonCV's
``_sync_transform``), or ``mode="val"`` when ``data.augment`` is off (short side to the crop,
centre crop). GluonCV draws those choices from Python's global :mod:`random`; the loader seeds
it for every sample from ``(seed, epoch, batch, row)`` and puts the previous state back, so a
batch is a pure function of its position, as with every other loader (exact resume).

Evaluation batches read ``mode="testval"`` samples (the whole image and mask, untouched) and
pad both to ``side x side`` at the bottom and right: the image with zeros (the mean, once
normalised), the mask with the ignore label -1, so the metric scores every real pixel at full
resolution and nothing else (DeepLabv3 evaluates VOC padded to its 513 crop the same way). An
image larger than the side (COCO's reach 640; VOC's are at most 500) is first scaled down to
fit, bilinear for the image and nearest for the mask, and scored at that size.
"""
from __future__ import annotations

import random
import re
from typing import Any, Callable, Iterator, Optional, Sequence

import mxnet as mx
import numpy as np

from ..errors import ConfigError, UserError
from .loader import Batch, ShardedLoader

__all__ = ["SegLoader", "IGNORE_LABEL"]

#: The label GluonCV's segmentation datasets give VOC's 255 border pixels.
IGNORE_LABEL = -1


def _sample_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def _fit(image: mx.nd.NDArray, mask: mx.nd.NDArray, side: int):
    """Scale ``image`` (bilinear) and ``mask`` (nearest) so that the long side is ``side``."""
    h, w = mask.shape
    scale = side / float(max(h, w))
    nh, nw = max(1, min(side, int(round(h * scale)))), max(1, min(side, int(round(w * scale))))
    image = mx.nd.contrib.BilinearResize2D(image.expand_dims(0), height=nh, width=nw)[0]
    rows = np.minimum((np.arange(nh) + 0.5) * h / nh, h - 1).astype(np.int64)
    cols = np.minimum((np.arange(nw) + 0.5) * w / nw, w - 1).astype(np.int64)
    return image, mx.nd.array(mask.asnumpy()[rows][:, cols])


def _files(dataset: Any, row: int, kind: str = "masks") -> str:
    """The image (``kind="images"``) or mask file of ``dataset[row]`` where the dataset lists
    them (GluonCV's ``images`` / ``masks``), looking through a concatenation (``locate``); else
    the row."""
    if hasattr(dataset, "locate"):
        dataset, row = dataset.locate(row)
    paths = getattr(dataset, kind, None)
    if isinstance(paths, (list, tuple)) and 0 <= row < len(paths) and isinstance(paths[row], str):
        return f"{kind[:-1]} {paths[row]}"
    return f"segmentation sample {row}"


def _damaged(exc: Exception, sample: str) -> str:
    """One line for a sample file PIL cannot read: the file PIL names, else the sample's image."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    named = re.match(r"cannot identify image file '(.+)'$", text)
    if named:
        return f"cannot read {named.group(1)}: not an image format PIL knows"
    return f"cannot read {sample} or its mask: {text}"


class SegLoader:
    """Batches of ``(images (B, 3, S, S), masks (B, S, S))`` from a segmentation dataset.

    Parameters
    ----------
    dataset : sequence
        Samples ``dataset[i] -> (image (3, h, w) NDArray, mask (h, w) NDArray)``, already in
        the mode the loader needs (train / val / testval).
    indices : sequence of int
        The dataset rows this loader iterates.
    batch_size : int
        Images per batch.
    side : int
        ``S``: training crops are ``S x S`` already; evaluation pads to it.
    train : bool
        Shuffle every epoch and seed the sample transforms; else keep the order and pad.
    seed : int
        Seed of the order and of the transforms.
    check : callable, optional
        ``check(row)`` raises ``UserError`` for a bad sample (a mask of another size) before
        it is read.
    num_classes : int, optional
        Every mask label must be a class ``0..num_classes-1`` or the ignore label: another is
        one ``UserError`` line naming the mask (none: unchecked).
    """

    def __init__(self, dataset: Any, indices: Sequence[int], batch_size: int, *, side: int, train: bool,
                 seed: int, check: Optional[Callable[[int], None]] = None, num_classes: Optional[int] = None):
        if batch_size <= 0 or seed < 0:
            raise ConfigError(f"batch size must be > 0 and seed >= 0, got {batch_size}, {seed}")
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        self.batch_size, self.side, self.train, self.seed, self.check = batch_size, side, train, seed, check
        self.num_classes = num_classes

    @property
    def num_samples(self) -> int:
        """Images the loader iterates."""
        return len(self.indices)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Dataset rows of ``epoch`` in reading order."""
        if not self.train:
            return self.indices
        return self.indices[np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch`` (float32 NCHW images, float32 masks)."""
        if epoch < 0 or not 0 <= start <= len(self):
            raise ValueError(f"epoch {epoch} / start batch {start} out of range (0..{len(self)})")
        order = self.order(epoch)
        for k in range(start, len(self)):
            rows = order[k * self.batch_size:(k + 1) * self.batch_size]
            pairs = [self._sample(int(row), epoch, k, j) for j, row in enumerate(rows)]
            yield mx.nd.stack(*[p[0] for p in pairs]), mx.nd.stack(*[p[1] for p in pairs])

    def _sample(self, row: int, epoch: int, batch: int, position: int):
        try:
            if self.check is not None:
                self.check(row)
            if self.train:
                state = random.getstate()
                random.seed(_sample_seed(self.seed, epoch, batch, position))
                try:
                    image, mask = self.dataset[row]
                finally:
                    random.setstate(state)
            else:
                image, mask = self.dataset[row]
        except (OSError, ValueError, SyntaxError) as exc:  # PIL on a damaged file (UnidentifiedImageError, ...)
            raise UserError(_damaged(exc, _files(self.dataset, row, "images"))) from None
        self._check_labels(mask, row)
        return (image, mask.astype(np.float32)) if self.train else self._pad(image, mask, row)

    def _check_labels(self, mask: mx.nd.NDArray, row: int) -> None:
        """``UserError`` naming the mask when a label is neither a class nor the ignore label."""
        if self.num_classes is None:
            return
        labels = np.unique(mask.asnumpy())
        bad = labels[(labels != IGNORE_LABEL) & ((labels < 0) | (labels >= self.num_classes))]
        if bad.size:
            raise UserError(f"{_files(self.dataset, row)} holds label {bad.max():g}, not a class "
                            f"0..{self.num_classes - 1} nor the ignore label: set model.num_classes to the "
                            f"dataset's number of classes")

    def _pad(self, image: mx.nd.NDArray, mask: mx.nd.NDArray, row: int):
        (_, h, w), (mh, mw), s = image.shape, mask.shape, self.side
        if (h, w) != (mh, mw):
            raise UserError(f"evaluation sample {row}: the mask is {mh}x{mw} but the image {h}x{w}")
        if h > s or w > s:
            image, mask = _fit(image, mask, s)
            h, w = mask.shape
        padded = mx.nd.zeros((image.shape[0], s, s), dtype=np.float32)
        padded[:, :h, :w] = image
        label = mx.nd.full((s, s), IGNORE_LABEL, dtype=np.float32)
        label[:h, :w] = mask.astype(np.float32)
        return padded, label

    def shard(self, rank: int, world: int) -> ShardedLoader:
        """Rank ``rank``'s rows of every batch (the whole batch is built and sliced)."""
        return ShardedLoader(self, rank, world)
