"""``dso-nas pack``: an ImageFolder tree to the four RecordIO files ImageNet runs read.

``SRC/train/<class>/<image>`` and ``SRC/val/<class>/<image>`` become ``OUT/train.rec`` +
``train.idx`` and ``OUT/val.rec`` + ``val.idx``: one record per image, label = the index of
its class among the sorted ``train/`` class folders (``OUT/classes.txt`` lists them in that
order), records in a random order fixed by ``seed`` (as im2rec shuffles its lists), so that
the first K records (``data.limit``) are a random subset of all classes. JPEGs are stored as they
are unless ``resize`` is set; any other image, or every image with ``resize``, is decoded,
converted to RGB, its short side resized to ``resize`` and encoded as JPEG. Encoding runs on
``workers`` processes; every file is written under a temporary name and renamed at the end.
"""
from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..errors import DatasetNotFoundError, UserError
from ..runlog import progress

__all__ = ["IMAGE_EXTENSIONS", "list_image_folder", "encode_image", "pack_image_folder"]

LOG = logging.getLogger("dso_nas")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
_JPEG = (".jpg", ".jpeg")


def list_image_folder(split_dir: str, classes: Sequence[str]) -> List[Tuple[str, int]]:
    """``[(path, label), ...]`` of the images under ``split_dir/<class>/``, sorted; a class
    folder not in ``classes`` is an error."""
    out = []
    for name in sorted(os.listdir(split_dir)):
        folder = os.path.join(split_dir, name)
        if not os.path.isdir(folder):
            continue
        if name not in classes:
            raise UserError(f"{folder}: class {name!r} is not among the {len(classes)} classes of the train folder")
        label = classes.index(name)
        out.extend((os.path.join(folder, f), label) for f in sorted(os.listdir(folder))
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    return out


def encode_image(path: str, resize: int = 0, quality: int = 95) -> bytes:
    """The record image bytes of ``path`` (see the module docstring)."""
    if not resize and path.lower().endswith(_JPEG):
        with open(path, "rb") as f:
            return f.read()
    from PIL import Image  # noqa: PLC0415 - only the packer decodes in Python

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if resize:
                w, h = im.size
                scale = resize / min(w, h)
                im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality)
            return buf.getvalue()
    except OSError as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


def _encode(job: Tuple[str, int, int]) -> bytes:
    path, resize, quality = job
    return encode_image(path, resize, quality)


def _write_split(items: List[Tuple[str, int]], prefix: str, resize: int, quality: int, workers: int,
                 desc: str) -> None:
    tmp_rec, tmp_idx = prefix + ".rec.tmp", prefix + ".idx.tmp"
    writer = mx.recordio.MXIndexedRecordIO(tmp_idx, tmp_rec, "w")
    jobs = [(path, resize, quality) for path, _ in items]
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            encoded = pool.map(_encode, jobs, chunksize=64)
            for key, ((_, label), img) in enumerate(progress(zip(items, encoded), total=len(items), desc=desc)):
                writer.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, float(label), key, 0), img))
    finally:
        writer.close()
    os.replace(tmp_rec, prefix + ".rec")
    os.replace(tmp_idx, prefix + ".idx")


def pack_image_folder(src: str, out: str, *, resize: int = 0, quality: int = 95, workers: int = 0,
                      seed: int = 0) -> Dict[str, int]:
    """Pack ``src`` (an ImageFolder tree with ``train/`` and ``val/``) into ``out``; returns
    the image counts and the number of classes."""
    train_dir, val_dir = os.path.join(src, "train"), os.path.join(src, "val")
    for d in (train_dir, val_dir):
        if not os.path.isdir(d):
            raise DatasetNotFoundError(f"ImageFolder split missing: {d} (expected SRC/train/<class>/* and "
                                       f"SRC/val/<class>/*)")
    if resize < 0 or not 1 <= quality <= 100:
        raise UserError(f"--resize must be >= 0 and --quality in 1..100, got {resize}, {quality}")
    classes = sorted(n for n in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, n)))
    if not classes:
        raise DatasetNotFoundError(f"no class folders in {train_dir}")
    splits = {"train": list_image_folder(train_dir, classes), "val": list_image_folder(val_dir, classes)}
    for k, items in enumerate(splits.values()):
        order = np.random.default_rng([seed, k]).permutation(len(items))
        items[:] = [items[i] for i in order]
    for name, items in splits.items():
        if not items:
            raise DatasetNotFoundError(f"no images in {os.path.join(src, name)}/<class>/ "
                                       f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    os.makedirs(out, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    for name, items in splits.items():
        _write_split(items, os.path.join(out, name), resize, quality, workers, f"pack {name}")
        LOG.info("packed %d %s images into %s.rec", len(items), name, os.path.join(out, name))
    tmp = os.path.join(out, "classes.txt.tmp")
    with open(tmp, "w") as f:
        f.writelines(f"{c}\n" for c in classes)
    os.replace(tmp, os.path.join(out, "classes.txt"))
    return {"train": len(splits["train"]), "val": len(splits["val"]), "classes": len(classes)}
