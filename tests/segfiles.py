"""Tiny segmentation datasets in the real VOC, SBD and COCO layouts, for tests of the readers.

The writers are ``tools/segwrite.py`` (not part of the package: only the tests and
``tools/fashion_mnist_voc.py`` write datasets); tests reach them through this module
(``segwrite``, ``save_palette_png``).

Each writer returns what it wrote, so a test can compare a reader's output with it: images
are smooth (they survive JPEG closely), masks hold ellipses of classes 1..num_classes-1.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import segwrite  # noqa: E402 - the writers live beside the tool that uses them (tools/segwrite.py)
from segwrite import coco_category_for_voc_class, save_palette_png, write_coco, write_sbd, write_voc  # noqa: E402

Size = Tuple[int, int]
NON_VOC_CATEGORY = 90  # COCO "toothbrush": not in GluonCV's CAT_LIST, so its pixels are ignored


class Written(NamedTuple):
    items: Dict[str, Tuple[np.ndarray, np.ndarray]]  # name -> (HxWx3 uint8 image, HxW uint8 mask)
    splits: Dict[str, List[str]]


class CocoWritten(NamedTuple):
    kept: Dict[str, List[Tuple[str, np.ndarray, np.ndarray]]]  # split -> (file, image, VOC mask)
    dropped: Dict[str, List[str]]  # split -> files GluonCV should filter out (<= 1000 pixels)


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An RGB gradient with mild noise: JPEG keeps it within a few grey levels."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(40, 200, 3) + rng.uniform(-50, 50, 3) * xx[..., None] + rng.uniform(-50, 50, 3) * yy[..., None]
    return np.clip(base + rng.normal(0, 2, (h, w, 3)), 0, 255).astype(np.uint8)


def ellipse_mask(rng: np.random.Generator, h: int, w: int, num_classes: int, n: int = 2,
                 band: int = 2) -> np.ndarray:
    """``n`` random ellipses of classes 1..num_classes-1 (later on top), a ``band``-pixel 255 ring."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), np.uint8)
    for _ in range(n):
        cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
        ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        mask[inside] = rng.integers(1, num_classes)
    if band:
        obj = mask > 0
        grown = obj.copy()
        for dy in range(-band, band + 1):
            for dx in range(-band, band + 1):
                grown |= np.roll(np.roll(obj, dy, 0), dx, 1)  # wraps, harmless: objects are central
        mask[grown & ~obj] = 255
    return mask


def _sizes(size: Union[Size, Sequence[Size]], n: int) -> List[Size]:
    if isinstance(size[0], int):
        return [tuple(size)] * n
    return [tuple(size[k % len(size)]) for k in range(n)]


def _items(rng, names, sizes, num_classes, band) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    return {n: (smooth_image(rng, h, w), ellipse_mask(rng, h, w, num_classes, band=band))
            for n, (h, w) in zip(names, sizes)}


def tiny_voc(root: str, n_train: int = 4, n_val: int = 2, size: Union[Size, Sequence[Size]] = (40, 48),
             seed: int = 0, num_classes: int = 5) -> Written:
    """``root/VOC2012`` with splits train, val and trainval; ``size`` may list (h, w) per image."""
    rng = np.random.default_rng(seed)
    names = [f"2012_{k:06d}" for k in range(n_train + n_val)]
    items = _items(rng, names, _sizes(size, len(names)), num_classes, band=2)
    splits = {"train": names[:n_train], "val": names[n_train:], "trainval": names}
    write_voc(root, items, splits)
    return Written(items, splits)


def tiny_sbd(root: str, n: int = 3, size: Union[Size, Sequence[Size]] = (40, 40), seed: int = 0,
             num_classes: int = 5, names: Optional[Sequence[str]] = None) -> Written:
    """``root/VOCaug/dataset`` with train (all but the last), val (the last) and trainval (all).

    The masks written have no void (SBD's have none), so ``items`` holds them as read back.
    """
    rng = np.random.default_rng(seed)
    names = list(names) if names is not None else [f"2008_{k:06d}" for k in range(n)]
    items = _items(rng, names, _sizes(size, n), num_classes, band=0)
    splits = {"train": names[:-1] if n > 1 else names, "val": names[-1:], "trainval": names}
    write_sbd(root, items, splits)
    return Written(items, splits)


def voc_class_mask(shape: Tuple[int, int], instances: Sequence[dict]) -> np.ndarray:
    """The mask GluonCV's COCOSegmentation makes: first instance wins, non-VOC ids ignored."""
    from gluoncv.data import COCOSegmentation
    mask = np.zeros(shape, np.uint8)
    for inst in instances:
        if inst["category_id"] in COCOSegmentation.CAT_LIST:
            free = (mask == 0) & inst["mask"]
            mask[free] = COCOSegmentation.CAT_LIST.index(inst["category_id"])
    return mask


def _rect(shape, top, left, h, w) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[top:top + h, left:left + w] = True
    return m


def _coco_split(rng, n: int, size: Size, num_classes: int, form: str, small: bool):
    images, instances, kept, dropped = [], [], [], []
    for k in range(n + int(small)):
        name = f"{len(images) + 1:012d}.jpg"
        image = smooth_image(rng, *size)
        if k == n:  # too few VOC pixels: a 10x10 object and a big non-VOC one
            objs = [(_rect(size, 2, 2, 10, 10), coco_category_for_voc_class(1)),
                    (_rect(size, 20, 20, 40, 40), NON_VOC_CATEGORY)]
        else:  # two overlapping rectangles (the first wins) and a non-VOC one
            objs = []
            for _ in range(2):
                h, w = int(rng.integers(size[0] // 2, size[0] - 4)), int(rng.integers(size[1] // 2, size[1] - 4))
                top, left = int(rng.integers(0, size[0] - h + 1)), int(rng.integers(0, size[1] - w + 1))
                objs.append((_rect(size, top, left, h, w),
                             coco_category_for_voc_class(int(rng.integers(1, num_classes)))))
            objs.append((_rect(size, 0, 0, 3, size[1]), NON_VOC_CATEGORY))
        here = [{"image": len(images), "category_id": c, "mask": m, "form": form} for m, c in objs]
        images.append((name, image))
        instances += here
        if k == n:
            dropped.append(name)
        else:
            kept.append((name, image, voc_class_mask(size, here)))
    return images, instances, kept, dropped


def tiny_coco(root: str, n_train: int = 3, n_val: int = 2, form: str = "polygon",
              size: Size = (64, 64), seed: int = 0, num_classes: int = 5) -> CocoWritten:
    """``root/{train2017,val2017,annotations}``: rectangles (exact as polygons) of VOC classes.

    Each split gets one extra image with too few VOC-class pixels, listed in ``dropped``.
    """
    rng = np.random.default_rng(seed)
    kept, dropped = {}, {}
    for split, key, n in (("train2017", "train", n_train), ("val2017", "val", n_val)):
        images, instances, kept[key], dropped[key] = _coco_split(rng, n, size, num_classes, form, True)
        write_coco(root, split, images, instances)
    assert os.path.isdir(os.path.join(root, "annotations"))
    return CocoWritten(kept, dropped)
