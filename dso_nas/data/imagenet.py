"""ImageNet from RecordIO (``data.name=imagenet``): the C++ iterator behind the Loader protocol.

``data.root`` holds ``train.rec`` + ``train.idx`` and ``val.rec`` + ``val.idx`` (im2rec's names;
the record label is the class index 0..K-1). Images are decoded and augmented by
``mx.io.ImageRecordIter`` on ``data.threads`` threads. Training batches get the fb.resnet
augmentation (TPAMI §4.3): random-resized crop (area ``data.min_area``..1, aspect 3/4..4/3)
to ``data.image_size``, brightness / contrast / saturation jitter ``data.jitter``, PCA
lighting ``data.lighting`` (the iterator's eigenvectors and eigenvalues are fb.resnet's, in
0..255 units: measured by the tests), horizontal flip; evaluation resizes the short side to ``data.resize`` and
takes the centre ``data.image_size`` crop. Both normalise by the ImageNet mean and std.

Reproducibility: epoch ``e`` is a fresh iterator whose shuffle seed and augmentation seed are
derived from ``(seed, e)``, so its batches are a pure function of them (tested); a run
resumed at batch ``k`` rebuilds the epoch and skips ``k`` batches, which costs their decoding
but not their training and gives the identical batches. Every keyword passed to the iterator
is checked against its documented parameters, because it accepts unknown ones in silence.
"""
from __future__ import annotations

import copy
import math
import os
import re
from typing import Any, Dict, Iterator, Tuple

import mxnet as mx
import numpy as np

from ..errors import ConfigError, DatasetNotFoundError, UserError, native_message
from .loader import Batch
from .recordio import RecordFile, cached_subset, check_record_file, split_record_file, writable_dir
from .splits import Loaders, child_seeds, split_indices

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RecordLoader", "ImageNetSpec", "iterator_params",
           "locate_imagenet"]

#: ImageNet RGB statistics in 0..255 units (the values GluonCV and fb.resnet use).
IMAGENET_MEAN = (123.68, 116.779, 103.939)
IMAGENET_STD = (58.393, 57.12, 57.375)
_FILES = ("train.rec", "train.idx", "val.rec", "val.idx")


def iterator_params() -> frozenset:
    """The parameter names ``mx.io.ImageRecordIter`` documents (its docstring lists them)."""
    return frozenset(re.findall(r"^(\w+) : ", mx.io.ImageRecordIter.__doc__ or "", re.M))


def _checked_iter(**kwargs) -> mx.io.DataIter:
    unknown = sorted(set(kwargs) - iterator_params())
    if unknown:  # the iterator would ignore them without a word
        raise ConfigError(f"mx.io.ImageRecordIter has no parameter {', '.join(unknown)}")
    return mx.io.ImageRecordIter(**kwargs)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFFFFFF)


def shard_count(n: int, rank: int, world: int) -> int:
    """Records of part ``rank`` of ``world`` as dmlc's indexed RecordIO split assigns them
    (contiguous parts of ``ceil(n / world)`` records)."""
    step = (n + world - 1) // world
    return max(0, min(n, step * (rank + 1)) - min(n, step * rank))


class RecordLoader:
    """Batches of one record file through ``mx.io.ImageRecordIter`` (the Loader protocol).

    Parameters
    ----------
    records : RecordFile
        The checked file pair.
    batch_size : int
        Images per batch (the last batch is smaller when the count does not divide).
    train : bool
        Shuffle every epoch and apply the training augmentation; else array order, centre crop.
    seed : int
        Seed of every epoch's order and augmentation.
    image_size, resize : int
        Crop side; evaluation short side (``resize`` < ``image_size`` means no resize).
    augment : dict
        ``min_area``, ``jitter``, ``lighting``, ``flip`` (``None``: no augmentation at all,
        training batches are then centre crops in shuffled order).
    threads : int
        Decoding threads.
    num_classes : int
        Labels must lie in ``0..num_classes-1``.
    rank, world : int
        This worker's part (``num_parts`` / ``part_index`` of the iterator).
    """

    def __init__(self, records: RecordFile, batch_size: int, *, train: bool, seed: int, image_size: int,
                 resize: int, augment: Any, threads: int, num_classes: int, rank: int = 0, world: int = 1):
        if batch_size <= 0 or seed < 0:
            raise ConfigError(f"batch size must be > 0 and seed >= 0, got {batch_size}, {seed}")
        self.records, self.batch_size, self.train, self.seed = records, batch_size, train, seed
        self.image_size, self.resize, self.augment = image_size, resize, augment
        self.threads, self.num_classes = threads, num_classes
        self._place(rank, world)

    def _place(self, rank: int, world: int) -> None:
        """Make this loader part ``rank`` of ``world``."""
        self.rank, self.world, self.count = rank, world, shard_count(len(self.records), rank, world)
        if self.count == 0:
            raise ConfigError(f"{self.records.rec} has {len(self.records)} records: none left for part {rank} "
                              f"of {world}")

    @property
    def num_samples(self) -> int:
        """Images this loader iterates."""
        return self.count

    def __len__(self) -> int:
        """Batches per epoch. Training: those of the smallest part, so every worker takes as
        many steps (a larger part leaves at most one batch of its shuffled records out each
        epoch); evaluation: all of this part's."""
        count = shard_count(len(self.records), self.world - 1, self.world) if self.train else self.count
        return math.ceil(count / self.batch_size)

    def iterator_kwargs(self, epoch: int) -> Dict[str, Any]:
        """The ``ImageRecordIter`` keywords of ``epoch`` (all checked against its parameters)."""
        s = self.image_size
        kw: Dict[str, Any] = dict(
            path_imgrec=self.records.rec, path_imgidx=self.records.idx, data_shape=(3, s, s),
            batch_size=self.batch_size, preprocess_threads=self.threads, round_batch=False,
            num_parts=self.world, part_index=self.rank, shuffle=self.train,
            seed=_seed(self.seed, epoch), seed_aug=_seed(self.seed, epoch, 1),
            mean_r=IMAGENET_MEAN[0], mean_g=IMAGENET_MEAN[1], mean_b=IMAGENET_MEAN[2],
            std_r=IMAGENET_STD[0], std_g=IMAGENET_STD[1], std_b=IMAGENET_STD[2])
        if self.train and self.augment is not None:
            a = self.augment
            kw.update(random_resized_crop=True, min_random_area=a["min_area"], max_random_area=1.0,
                      min_aspect_ratio=3.0 / 4.0, max_aspect_ratio=4.0 / 3.0, brightness=a["jitter"],
                      contrast=a["jitter"], saturation=a["jitter"], pca_noise=a["lighting"],
                      rand_mirror=bool(a["flip"]))
        elif self.resize >= s:
            kw.update(resize=self.resize)
        return kw

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch`` (float32 NCHW data, float32 labels)."""
        if epoch < 0 or not 0 <= start <= len(self):
            raise ValueError(f"epoch {epoch} / start batch {start} out of range (0..{len(self)})")
        if start == len(self):
            return
        try:
            it = _checked_iter(**self.iterator_kwargs(epoch))
            for k in range(len(self)):
                batch = it.next()
                if k < start:
                    continue
                rows = min(self.batch_size, self.count - k * self.batch_size)  # the tail rows are garbage
                data, label = batch.data[0][:rows], batch.label[0][:rows]
                lab = label.asnumpy()
                if lab.size and (lab.min() < 0 or lab.max() >= self.num_classes or np.any(lab != np.round(lab))):
                    raise UserError(f"{self.records.rec}: a record's label {lab.max():g} is not a class index "
                                    f"0..{self.num_classes - 1} (set model.num_classes to the number of classes)")
                yield data, label
        except StopIteration:
            raise UserError(f"cannot read {self.records.rec}: it ends before the records its index lists") from None
        except mx.base.MXNetError as exc:
            raise UserError(f"cannot read {self.records.rec}: {native_message(exc)} (a damaged record or an image "
                            f"that does not decode? `dso-nas pack` checks every image)") from None

    def shard(self, rank: int, world: int) -> "RecordLoader":
        """Part ``rank`` of ``world`` (the iterator's ``part_index`` / ``num_parts``), reading
        ``batch_size / world`` images per batch: the batch stays the global one."""
        if self.world != 1:
            raise ValueError("a sharded loader cannot be sharded again")
        if self.batch_size % world:
            raise ConfigError(f"a batch of {self.batch_size} cannot be split evenly over {world} workers")
        part = copy.copy(self)
        part.batch_size = self.batch_size // world
        part._place(rank, world)
        return part


def locate_imagenet(root: str) -> Tuple[str, str, str, str]:
    """The four file paths under ``root``; one line naming what is missing (an ImageFolder
    tree gets the pack command to run)."""
    if not root:
        raise DatasetNotFoundError("ImageNet has no default location; set data.root=DIR (IMAGENET_ROOT=DIR with make) "
                                   "to the folder with train.rec, train.idx, val.rec, val.idx")
    paths = tuple(os.path.join(root, name) for name in _FILES)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        if os.path.isdir(os.path.join(root, "train")):
            raise DatasetNotFoundError(f"{root} is an ImageFolder tree, not RecordIO: pack it once with "
                                       f"'dso-nas pack {root} OUT' and set data.root=OUT")
        raise DatasetNotFoundError(f"ImageNet RecordIO file missing: {missing[0]} (data.root={root} must hold "
                                   f"{', '.join(_FILES)})")
    return paths


class ImageNetSpec:
    """The ``imagenet`` entry of :data:`dso_nas.data.DATASETS` (RecordIO, see the module docstring)."""

    mean = tuple(m / 255.0 for m in IMAGENET_MEAN)
    std = tuple(s / 255.0 for s in IMAGENET_STD)
    default_root = ""
    num_classes = 1000
    channels = 3
    task = "classification"

    def check(self, root: str) -> Tuple[str, str, str, str]:
        """``DatasetNotFoundError`` unless the four files are there (reads only their sizes)."""
        return locate_imagenet(root)

    def input_side(self, cfg: Any) -> int:
        """Side of the network input: ``data.image_size``."""
        return int(cfg.data.image_size)

    def open(self, cfg: Any, *, retrain: bool):
        """``(Loaders, (C, H, W))`` of ``cfg`` (see :meth:`dso_nas.data.DatasetSpec.open`)."""
        d = cfg.data
        if d.validation > 0:
            raise ConfigError("data.validation is not supported for RecordIO datasets: pack a validation set "
                              "as val.rec / val.idx instead")
        train_rec, train_idx, val_rec, val_idx = locate_imagenet(d.root)
        train, val = check_record_file(train_rec, train_idx), check_record_file(val_rec, val_idx)
        cache = lambda: writable_dir(d.cache or os.path.join(d.root, "dso_nas_cache"), "data.cache")  # noqa: E731
        limit = d.limit if retrain or d.search_limit <= 0 else d.search_limit
        n = len(train) if limit <= 0 else min(limit, len(train))
        if n < 2:
            raise ConfigError(f"{train_rec} has {len(train)} record(s): need at least 2")
        if n < len(train) and (retrain or not cfg.search.split):
            train = cached_subset(train, train.keys[:n], os.path.join(cache(), f"train-first{n}"), {"limit": n}, "subset")
        if 0 < d.test_limit < len(val):
            val = cached_subset(val, val.keys[:d.test_limit], os.path.join(cache(), f"val-first{d.test_limit}"),
                                {"limit": d.test_limit}, "subset")
        aug = {"min_area": d.min_area, "jitter": d.jitter, "lighting": d.lighting, "flip": True} if d.augment else None
        bs = cfg.retrain.batch_size if retrain else cfg.train.batch_size
        threads = d.threads or os.cpu_count() or 1
        common = dict(image_size=d.image_size, resize=d.resize, threads=threads, num_classes=cfg.model.num_classes)
        s_w, s_lam, s_full = child_seeds(cfg.seed, 3)

        def loader(records: RecordFile, batch: int, train_mode: bool, seed: int) -> RecordLoader:
            return RecordLoader(records, batch, train=train_mode, seed=seed, augment=aug, **common)

        full = loader(train, bs, True, s_full)
        if retrain or not cfg.search.split:
            weights, lambdas = loader(train, bs, True, s_w), loader(train, bs, True, s_lam)
        else:
            w, lam = split_record_file(train, cache(), weight_fraction=d.weight_fraction,
                                       seed=cfg.seed, limit=n,
                                       indices=split_indices(n, d.weight_fraction, cfg.seed))
            weights, lambdas = loader(w, bs, True, s_w), loader(lam, bs, True, s_lam)
        test = loader(val, cfg.train.eval_batch_size, False, 0)
        return Loaders(weights, lambdas, full, test, "test"), (3, d.image_size, d.image_size)
