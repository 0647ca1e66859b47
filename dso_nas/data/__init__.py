"""Datasets by ``data.name`` (:data:`DATASETS`), the D_w / D_λ split and reproducible loaders.

Every entry of :data:`DATASETS` has ``check(root)``, ``input_side(cfg)``, ``channels`` and
``open(cfg, retrain=...) -> (Loaders, (C, H, W))``. In-memory datasets are a
:class:`DatasetSpec`: :func:`load_dataset` reads Fashion-MNIST or CIFAR-10 from local files
into a :class:`Dataset`, :func:`build_loaders` splits the training images into the weight set
D_w and the structure set D_λ (TPAMI Sec. 4.1: 25K / 25K on CIFAR-10) and wraps every part
in an :class:`~dso_nas.data.loader.ArrayLoader`. ImageNet (:mod:`dso_nas.data.imagenet`)
reads RecordIO files through MXNet's C++ iterator, the segmentation sets (:mod:`dso_nas.data.voc`:
VOC, SBD + VOC, COCO) GluonCV's readers, behind the same :class:`~dso_nas.data.loader.Loader`
protocol. A new dataset is one module plus one
``DATASETS.register`` line below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Tuple

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from .augment import Augment
from .cifar import check_cifar10, load_cifar10
from .fashion_mnist import DEFAULT_ROOT as FASHION_MNIST_ROOT, check_fashion_mnist, load_fashion_mnist
from .imagenet import ImageNetSpec, RecordLoader
from .loader import ArrayLoader, Loader, ShardedLoader
from .splits import Loaders, child_seeds, split_indices
from .voc import SegmentationSpec

__all__ = ["Dataset", "DatasetSpec", "Loaders", "Loader", "ArrayLoader", "ShardedLoader", "RecordLoader", "Augment",
           "DATASETS", "check_dataset", "dataset_spec", "load_dataset", "split_indices", "build_loaders", "train_augment"]

@dataclass(frozen=True)
class DatasetSpec:
    """What the package knows of a dataset before reading it.

    Attributes
    ----------
    reader : callable
        ``reader(root) -> (train_x, train_y, test_x, test_y)``.
    check : callable
        ``check(root)`` raises ``DatasetNotFoundError`` when a file is missing (reads nothing;
        what it returns is the reader's business).
    default_root : str
        Where ``data.root=""`` looks ("" = the user must give it).
    mean, std : tuple of float
        Per-channel statistics of the training images (in ``[0, 1]``).
    image_size : int
        Side of the (square) images.
    num_classes : int
        Number of classes.
    pad, flip : int, bool
        Training augmentation: zero padding before the random crop back to ``image_size``,
        and random horizontal flips.
    """

    reader: Callable[[str], Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    check: Callable[[str], object]
    default_root: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    image_size: int
    num_classes: int = 10
    pad: int = 4
    flip: bool = True
    #: The task its labels are for (``task.name`` must match).
    task = "classification"

    @property
    def channels(self) -> int:
        """Image channels (one statistic per channel)."""
        return len(self.mean)

    def augment(self, cutout: int = 0) -> Augment:
        """The training augmentation of this dataset, with cutout of side ``cutout``."""
        return Augment(pad=self.pad, flip=self.flip, cutout=cutout)

    def input_side(self, cfg: Any) -> int:
        """Side of the network input (the images' own)."""
        return self.image_size

    def open(self, cfg: Any, *, retrain: bool) -> Tuple["Loaders", Tuple[int, int, int]]:
        """The loaders of ``cfg`` and the images' ``(C, H, W)``.

        Search (``retrain=False``) reads the first ``data.search_limit`` training images when
        that is set, retraining the first ``data.limit``; both exclude a ``data.validation``
        hold-out; cutout only when retraining."""
        d = cfg.data
        ds = load_dataset(d.name, d.root)
        top = int(max(ds.train_y.max(initial=0), ds.test_y.max(initial=0)))
        if top >= cfg.model.num_classes:
            raise ConfigError(f"data.name={d.name} has labels up to {top} but model.num_classes="
                              f"{cfg.model.num_classes}: set model.num_classes={top + 1}")
        h, w, c = ds.image_shape
        loaders = build_loaders(
            ds, batch_size=cfg.retrain.batch_size if retrain else cfg.train.batch_size,
            eval_batch_size=cfg.train.eval_batch_size,
            limit=d.limit if retrain or d.search_limit <= 0 else d.search_limit,
            weight_fraction=d.weight_fraction, split=cfg.search.split, seed=cfg.seed,
            cutout=d.cutout if retrain else 0, augment=d.augment, test_limit=d.test_limit,
            validation=d.validation)
        return loaders, (c, h, w)


#: The datasets by ``data.name``. The CIFAR-10 statistics are CIFAR-10's own (the authors'
#: release used CIFAR-100's by mistake); CIFAR-10 pads to 40x40 and crops 32x32 (the paper)
#: with the standard flip, Fashion-MNIST reuses it (pad 4, crop 28).
DATASETS: Registry[Any] = Registry("dataset", "data.name")
DATASETS.register("fashion_mnist", DatasetSpec(load_fashion_mnist, check_fashion_mnist, FASHION_MNIST_ROOT,
                                               (0.2860,), (0.3530,), 28))
DATASETS.register("cifar10", DatasetSpec(load_cifar10, check_cifar10, "", (0.4914, 0.4822, 0.4465),
                                         (0.2470, 0.2435, 0.2616), 32))
DATASETS.register("imagenet", ImageNetSpec())
DATASETS.register("voc", SegmentationSpec("voc", DATASETS.get))
DATASETS.register("voc_aug", SegmentationSpec("voc_aug", DATASETS.get))
DATASETS.register("coco", SegmentationSpec("coco", DATASETS.get))


def train_augment(name: str, cutout: int = 0) -> Augment:
    """The training augmentation of in-memory dataset ``name``, with cutout of side ``cutout``."""
    spec = dataset_spec(name)
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"data.name={name} is not an in-memory dataset; its loader augments")
    return spec.augment(cutout)


def check_dataset(name: str, root: str = "") -> None:
    """``UserError`` for an unknown name, ``DatasetNotFoundError`` for a missing file."""
    spec = dataset_spec(name)
    spec.check(root or spec.default_root)


def dataset_spec(name: str) -> Any:
    """The :class:`DatasetSpec` of ``name``; ``ConfigError`` listing the valid names if unknown."""
    return DATASETS.get(name)


@dataclass
class Dataset:
    """Training and test images ``(N, H, W, C)`` uint8 with int32 labels, and statistics."""

    train_x: np.ndarray = field(repr=False)
    train_y: np.ndarray = field(repr=False)
    test_x: np.ndarray = field(repr=False)
    test_y: np.ndarray = field(repr=False)
    num_classes: int
    name: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(self.train_x.shape[1:])


def load_dataset(name: str, root: str) -> Dataset:
    """Read dataset ``name`` ('fashion_mnist' or 'cifar10') from ``root`` ('' = default)."""
    spec = dataset_spec(name)
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"data.name={name} is not an in-memory dataset")
    train_x, train_y, test_x, test_y = spec.reader(root or spec.default_root)
    return Dataset(train_x, train_y, test_x, test_y, spec.num_classes, name, spec.mean, spec.std)


def build_loaders(ds: Dataset, *, batch_size: int, eval_batch_size: int, limit: int,
                  weight_fraction: float, split: bool, seed: int, cutout: int = 0,
                  augment: bool = True, test_limit: int = 0, validation: int = 0) -> Loaders:
    """Loaders for search (D_w, D_λ), retraining (all training images) and testing.

    Parameters
    ----------
    ds : Dataset
        The loaded dataset.
    batch_size, eval_batch_size : int
        Training and test batch sizes.
    limit : int
        If > 0, use only the first ``limit`` training images (before splitting).
    weight_fraction : float
        Share of the training images in D_w (0.5 on CIFAR-10); ignored without ``split``.
    split : bool
        Split into disjoint D_w / D_λ; if False (Table 7 ablation) both iterate the whole
        (limited) training set, in different orders.
    seed : int
        Seed of the split and of every loader (each gets its own derived seed).
    cutout : int
        Cutout side for the training loaders (0: none).
    augment : bool
        Augment the training loaders (pad-crop, flip, cutout); the test set never is.
    test_limit : int
        If > 0, use only the first ``test_limit`` test images (smoke runs).
    validation : int
        If > 0, hold out the last ``validation`` training images (the same for every seed) and
        evaluate on them instead of the test set: tuning never reads the test set. ``limit``
        then counts from the start of the remaining images.
    """
    pool = len(ds.train_x) - validation
    if validation < 0 or pool < 2:
        raise ConfigError(f"data.validation={validation} leaves {pool} of {len(ds.train_x)} training images")
    n = pool if limit <= 0 else min(limit, pool)
    x, y = ds.train_x[:n], ds.train_y[:n]
    aug = dataset_spec(ds.name).augment(cutout) if augment else None
    s_w, s_lam, s_full = child_seeds(seed, 3)

    def train(xs: np.ndarray, ys: np.ndarray, s: int) -> ArrayLoader:
        return ArrayLoader(xs, ys, batch_size, shuffle=True, augment=aug,
                           mean=ds.mean, std=ds.std, seed=s)

    if split:
        idx_w, idx_lam = split_indices(n, weight_fraction, seed)
        weights, lambdas = train(x[idx_w], y[idx_w], s_w), train(x[idx_lam], y[idx_lam], s_lam)
    else:
        weights, lambdas = train(x, y, s_w), train(x, y, s_lam)
    ex, ey, split_name = ((ds.train_x[pool:], ds.train_y[pool:], "val") if validation > 0
                          else (ds.test_x, ds.test_y, "test"))
    n_test = len(ex) if test_limit <= 0 else min(test_limit, len(ex))
    test = ArrayLoader(ex[:n_test], ey[:n_test], eval_batch_size, shuffle=False,
                       augment=None, mean=ds.mean, std=ds.std, seed=0)
    return Loaders(weights, lambdas, train(x, y, s_full), test, split_name)
