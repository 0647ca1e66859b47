"""Segmentation datasets (TPAMI §4.4) through GluonCV's readers: ``voc``, ``voc_aug``, ``coco``.

* ``voc`` - PASCAL VOC 2012 (``gluoncv.data.VOCSegmentation``): ``data.root`` holds ``VOC2012/``
  with ``JPEGImages/``, ``SegmentationClass/`` (palette PNGs, 255 = border, read as -1) and
  ``ImageSets/Segmentation/{train,val,trainval}.txt``. Training reads the images of
  ``train.txt`` (GluonCV's own ``train`` split reads ``trainval.txt``, which holds the
  validation images: we keep them out), evaluation ``val.txt``.
* ``voc_aug`` - SBD + VOC (``gluoncv.data.VOCAugSegmentation``): ``data.root`` also holds
  ``VOCaug/dataset/`` (``img/``, ``cls/*.mat``, ``trainval.txt``); training reads SBD's images
  that are not in VOC's ``val.txt`` plus VOC's ``train.txt`` ones SBD lacks (the usual
  ``train_aug`` set); evaluation VOC ``val.txt``.
* ``coco`` - COCO 2017 restricted to the 20 VOC classes (``gluoncv.data.COCOSegmentation``):
  ``data.root`` holds ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/``.
  GluonCV keeps the ids of the images with over 1,000 labelled pixels in a file beside the
  annotations; here that file goes to a shadow folder in ``data.cache`` (links to the real
  files), so a read-only dataset folder works.

``data.extra`` adds more training sets (``name:root``) to ``data.name``'s: the paper's first
retraining stage is ``coco`` + SBD + VOC. Images are normalised with GluonCV's ImageNet
statistics. Missing folders, list entries naming absent files, and masks whose size differs
from their image's end in one line.
"""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import logging
import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, DatasetNotFoundError, UserError
from ..paths import read_text
from .recordio import writable_dir
from .segloader import SegLoader
from .splits import Loaders, child_seeds, split_indices

__all__ = ["SegmentationSpec", "VOC_MEAN", "VOC_STD", "read_list"]

LOG = logging.getLogger("dso_nas")

#: GluonCV's segmentation normalisation (ImageNet statistics).
VOC_MEAN, VOC_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_VOC, _SBD = "VOC2012", os.path.join("VOCaug", "dataset")
_COCO_FILES = {"train": ("annotations/instances_train2017.json", "train2017"),
               "val": ("annotations/instances_val2017.json", "val2017")}


def read_list(path: str) -> List[str]:
    """Image names of a VOC list file, one a line; one line naming a missing file."""
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"segmentation list file missing: {path}")
    return [line.strip() for line in read_text(path, "segmentation list file").splitlines() if line.strip()]


def _check_files(listed: Sequence[str], folder: str, ext: str, list_path: str) -> None:
    for name in listed:
        path = os.path.join(folder, name + ext)
        if not os.path.isfile(path):
            raise DatasetNotFoundError(f"{list_path} names {name} but {path} is missing")


def _check_voc(root: str, *splits: str) -> None:
    base = os.path.join(root, _VOC)
    if not os.path.isdir(base):
        raise DatasetNotFoundError(f"no {_VOC}/ folder in data.root={root} (VOC_ROOT is the folder holding "
                                   f"{_VOC}/, GluonCV's layout)")
    for split in splits:
        path = os.path.join(base, "ImageSets", "Segmentation", f"{split}.txt")
        names = read_list(path)
        _check_files(names, os.path.join(base, "JPEGImages"), ".jpg", path)
        _check_files(names, os.path.join(base, "SegmentationClass"), ".png", path)


def _check_sbd(root: str) -> None:
    base = os.path.join(root, _SBD)
    if not os.path.isdir(base):
        raise DatasetNotFoundError(f"no {_SBD}/ folder in data.root={root} (voc_aug reads SBD there, beside {_VOC}/)")
    path = os.path.join(base, "trainval.txt")
    names = read_list(path)
    _check_files(names, os.path.join(base, "img"), ".jpg", path)
    _check_files(names, os.path.join(base, "cls"), ".mat", path)


def _check_coco(root: str, *splits: str) -> None:
    for split in splits:
        for rel in _COCO_FILES[split]:
            if not os.path.exists(os.path.join(root, rel)):
                raise DatasetNotFoundError(f"COCO file missing: {os.path.join(root, rel)} (data.root must hold "
                                           f"annotations/instances_{split}2017.json and {split}2017/)")
    try:
        import pycocotools  # noqa: F401,PLC0415 - an optional dependency, checked only for COCO
    except ImportError:
        raise UserError("data.name=coco needs pycocotools: pip install pycocotools==2.0.11") from None


def _transform():
    from mxnet.gluon.data.vision import transforms  # noqa: PLC0415 - defers the slow MXNet import

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(VOC_MEAN, VOC_STD)])


def _size_check(images: Sequence[str], masks: Sequence[str]):
    """``check(row)``: the mask file has its image's size (header reads only)."""
    from PIL import Image  # noqa: PLC0415 - defers PIL to the segmentation readers

    def check(row: int) -> None:
        with Image.open(images[row]) as im, Image.open(masks[row]) as mk:
            if im.size != mk.size:
                raise UserError(f"mask {masks[row]} is {mk.size[0]}x{mk.size[1]} but its image {images[row]} is "
                                f"{im.size[0]}x{im.size[1]}")
    return check


def _coco_cache(root: str, cache: str) -> str:
    """A writable shadow of ``root`` where GluonCV may write its filtered-id files."""
    if not cache:
        cache = os.path.join(root, "dso_nas_cache")
        if not os.access(root, os.W_OK):
            digest = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:12]
            cache = os.path.join(os.path.expanduser("~"), ".cache", "dso_nas", f"coco-{digest}")
    shadow = os.path.join(writable_dir(cache, "data.cache"), "coco_root")
    os.makedirs(os.path.join(shadow, "annotations"), exist_ok=True)
    for rel in (*_COCO_FILES["train"], *_COCO_FILES["val"]):
        src, dst = os.path.abspath(os.path.join(root, rel)), os.path.join(shadow, rel)
        if os.path.exists(src) and not os.path.lexists(dst):
            os.symlink(src, dst)
    return shadow


class _Concat:
    """Several datasets read as one (``data.extra``)."""

    def __init__(self, parts: Sequence[Any]):
        self.parts = list(parts)
        self.ends = list(np.cumsum([len(p) for p in self.parts]))

    def __len__(self) -> int:
        return int(self.ends[-1]) if self.ends else 0

    def locate(self, row: int) -> Tuple[Any, int]:
        k = bisect.bisect_right(self.ends, row)
        return self.parts[k], row - (int(self.ends[k - 1]) if k else 0)

    def __getitem__(self, row: int):
        part, i = self.locate(row)
        return part[i]


class SegmentationSpec:
    """A ``DATASETS`` entry of a segmentation dataset (``kind``: voc, voc_aug or coco)."""

    task = "segmentation"
    channels = 3
    num_classes = 21  # background + the 20 VOC classes (COCO is mapped onto them)
    default_root = ""
    mean, std = VOC_MEAN, VOC_STD

    def __init__(self, kind: str, datasets: Callable[[str], Any]):
        """``datasets``: name -> registered dataset (``DATASETS.get``), for ``data.extra``."""
        self.kind, self.datasets = kind, datasets

    # -- checks --------------------------------------------------------------------------
    def check(self, root: str) -> None:
        """``DatasetNotFoundError`` naming the first missing folder or listed file."""
        if not root:
            raise DatasetNotFoundError(f"data.name={self.kind} has no default location; set data.root=DIR")
        if self.kind == "coco":
            _check_coco(root, "train", "val")
            return
        _check_voc(root, "train", "val", "trainval")
        if self.kind == "voc_aug":
            _check_sbd(root)

    def input_side(self, cfg: Any) -> int:
        """Side of the network input: ``data.image_size`` (training crop and evaluation pad)."""
        return int(cfg.data.image_size)

    # -- GluonCV datasets ----------------------------------------------------------------
    def train_set(self, root: str, cfg: Any):
        """``(dataset, check)`` of the training images of ``root`` (``check(row)``: the VOC
        masks' sizes; SBD's and COCO's masks are made at their image's size); ``root`` has passed
        :meth:`check`."""
        mode = "train" if cfg.data.augment else "val"
        kw = dict(mode=mode, transform=_transform(), base_size=cfg.data.base_size, crop_size=cfg.data.image_size)
        if self.kind == "coco":
            return self._coco(root, "train", cfg, **kw), None
        from gluoncv.data import VOCAugSegmentation, VOCSegmentation  # noqa: PLC0415 - defers the slow gluoncv import

        voc_dir = os.path.join(root, _VOC)
        train = read_list(os.path.join(voc_dir, "ImageSets", "Segmentation", "train.txt"))
        voc = VOCSegmentation(root, split="train", **kw)  # GluonCV's train split is trainval.txt
        keep = set(train)
        if self.kind == "voc_aug":
            val = set(read_list(os.path.join(voc_dir, "ImageSets", "Segmentation", "val.txt")))
            sbd = VOCAugSegmentation(root, split="train", **kw)
            rows = [i for i, p in enumerate(sbd.images) if _stem(p) not in val]
            sbd.images, sbd.masks = [sbd.images[i] for i in rows], [sbd.masks[i] for i in rows]
            keep -= {_stem(p) for p in sbd.images}
        rows = [i for i, p in enumerate(voc.images) if _stem(p) in keep]
        voc.images, voc.masks = [voc.images[i] for i in rows], [voc.masks[i] for i in rows]
        check = _size_check(voc.images, voc.masks)
        if self.kind == "voc_aug":
            both = _Concat([sbd, voc])
            return both, _row_check(both, both.parts, [None, check])
        return voc, check

    def eval_set(self, root: str, cfg: Any):
        """The evaluation images (VOC ``val.txt``; COCO ``val2017``), whole (GluonCV's testval);
        ``root`` has passed :meth:`check`."""
        kw = dict(mode="testval", transform=_transform(), crop_size=cfg.data.image_size)
        if self.kind == "coco":
            return self._coco(root, "val", cfg, **kw)
        from gluoncv.data import VOCSegmentation  # noqa: PLC0415 - defers the slow gluoncv import

        return VOCSegmentation(root, split="val", **kw)

    def _coco(self, root: str, split: str, cfg: Any, **kw):
        from gluoncv.data import COCOSegmentation  # noqa: PLC0415 - defers the slow gluoncv import

        shadow = _coco_cache(root, cfg.data.cache)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):  # GluonCV and pycocotools print their progress
            ds = COCOSegmentation(shadow, split=split, **kw)
        LOG.debug("COCO %s: %s", split, out.getvalue().strip().replace("\n", " | "))
        if len(ds) == 0:
            raise DatasetNotFoundError(f"COCO {split}2017 in {root} has no image with over 1,000 pixels of VOC classes")
        return ds

    # -- loaders -------------------------------------------------------------------------
    def open(self, cfg: Any, *, retrain: bool) -> Tuple[Loaders, Tuple[int, int, int]]:
        """``(Loaders, (3, S, S))``: D_w / D_λ (search) or all training images, and the
        evaluation set, ``S = data.image_size``."""
        d = cfg.data
        if d.validation > 0:
            raise ConfigError("data.validation is not supported for segmentation datasets: they have a val split")
        self.check(d.root)  # once: the GluonCV readers assert on missing files without saying which
        train, check = self.train_set(d.root, cfg)
        parts, checks = [train], [check]
        for entry in d.extra:
            name, _, root = str(entry).partition(":")
            spec = self.datasets(name)
            if not isinstance(spec, SegmentationSpec) or not root:
                raise ConfigError(f"data.extra entry {entry!r} must be 'name:root' of a segmentation dataset")
            spec.check(root)
            extra, extra_check = spec.train_set(root, cfg)
            parts.append(extra)
            checks.append(extra_check)
        dataset = train if len(parts) == 1 else _Concat(parts)
        row_check = _row_check(dataset, parts, checks)
        limit = d.limit if retrain or d.search_limit <= 0 else d.search_limit
        n = len(dataset) if limit <= 0 else min(limit, len(dataset))
        if n < 2:
            raise ConfigError(f"the {self.kind} training set in {d.root} has {len(dataset)} image(s): need at least 2")
        side, bs = int(d.image_size), cfg.retrain.batch_size if retrain else cfg.train.batch_size
        s_w, s_lam, s_full = child_seeds(cfg.seed, 3)

        def loader(rows, seed: int) -> SegLoader:
            return SegLoader(dataset, rows, bs, side=side, train=True, seed=seed, check=row_check,
                             num_classes=cfg.model.num_classes)

        everything = np.arange(n)
        if retrain or not cfg.search.split:
            weights, lambdas = loader(everything, s_w), loader(everything, s_lam)
        else:
            idx_w, idx_lam = split_indices(n, d.weight_fraction, cfg.seed)
            weights, lambdas = loader(idx_w, s_w), loader(idx_lam, s_lam)
        val = self.eval_set(d.root, cfg)
        n_val = len(val) if d.test_limit <= 0 else min(d.test_limit, len(val))
        test = SegLoader(val, np.arange(n_val), cfg.train.eval_batch_size, side=side, train=False, seed=0,
                         num_classes=cfg.model.num_classes)
        return Loaders(weights, lambdas, loader(everything, s_full), test, "val"), (3, side, side)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _row_check(dataset: Any, parts: Sequence[Any], checks: Sequence[Any]):
    """One ``check(row)`` over the concatenation (parts without a check pass)."""
    if not any(checks):
        return None
    if len(parts) == 1:
        return checks[0]
    lookup: Dict[int, Any] = {id(p): c for p, c in zip(parts, checks)}

    def check(row: int) -> None:
        part, i = dataset.locate(row)
        if lookup.get(id(part)) is not None:
            lookup[id(part)](i)
    return check
