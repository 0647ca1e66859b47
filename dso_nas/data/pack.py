"""``dso-nas pack``: an ImageFolder tree to the four RecordIO files ImageNet runs read.

``SRC/train/<class>/<image>`` and ``SRC/val/<class>/<image>`` become ``OUT/train.rec`` +
``train.idx`` and ``OUT/val.rec`` + ``val.idx``: one record per image, label = the index of
its class among the sorted ``train/`` class folders (``OUT/classes.txt`` lists them in that
order), records in a random order fixed by ``seed`` (as im2rec shuffles its lists), so that
the first K records (``data.limit``) are a random subset of all classes. JPEGs are stored as they
are unless ``resize`` is set; any other image, or every image with ``resize``, is decoded,
converted to RGB, its short side resized to ``resize`` and encoded as JPEG; a JPEG stored as it
is is decoded once at 1/8 scale to check it. An image that cannot be decoded stops the pack
with one line naming it and the count (``skip_bad``: it is left out and counted). Encoding runs
on ``workers`` processes. The files are written into a temporary folder beside OUT and moved
into it once every split is packed (:func:`dso_nas.paths.staged_folder`), so a failed or
interrupted pack leaves OUT as it was; packed files OUT already holds are replaced only with
``force``.
"""
from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np

from ..errors import DatasetNotFoundError, UserError
from ..paths import check_output, staged_folder
from ..runlog import progress

__all__ = ["IMAGE_EXTENSIONS", "PACKED_FILES", "list_image_folder", "encode_image", "pack_image_folder"]

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


def _why(exc: Exception) -> str:
    """What PIL said, without its object reprs."""
    from PIL import UnidentifiedImageError  # noqa: PLC0415 - only the packer decodes in Python

    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL knows"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _decode_check(data: bytes, path: str) -> None:
    """``UserError`` unless ``data`` decodes as an image: a JPEG at 1/8 scale (PIL's draft
    mode still reads every byte), so a truncated or garbled file is caught while packing,
    not by the RecordIO iterator in the middle of a search."""
    from PIL import Image  # noqa: PLC0415 - only the packer decodes in Python

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (1, 1))
            im.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot decode image {path}: {_why(exc)}") from None


def encode_image(path: str, resize: int = 0, quality: int = 95) -> bytes:
    """The record image bytes of ``path`` (see the module docstring); ``UserError`` naming
    it when it cannot be read or decoded."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not resize and path.lower().endswith(_JPEG):
        _decode_check(data, path)
        return data
    from PIL import Image  # noqa: PLC0415 - only the packer decodes in Python

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            if resize:
                w, h = im.size
                scale = resize / min(w, h)
                im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality)
            return buf.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot decode image {path}: {_why(exc)}") from None


def _encode(job: Tuple[str, int, int]) -> Tuple[Optional[bytes], str]:
    """``(bytes, "")`` of one image, or ``(None, why)`` when it cannot be packed."""
    path, resize, quality = job
    try:
        return encode_image(path, resize, quality), ""
    except UserError as exc:
        return None, str(exc)


def _write_split(items: List[Tuple[str, int]], prefix: str, resize: int, quality: int, workers: int,
                 desc: str) -> Tuple[int, List[str]]:
    """Write the records of ``items`` to ``prefix.rec`` / ``.idx``; the number written and
    the messages of the images that could not be packed (left out)."""
    writer = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    jobs = [(path, resize, quality) for path, _ in items]
    bad: List[str] = []
    key = 0
    try:
        with ProcessPoolExecutor(max_workers=max(1, min(workers, -(-len(jobs) // 64)))) as pool:  # one per chunk
            encoded = pool.map(_encode, jobs, chunksize=64)
            for (_, label), (img, why) in progress(zip(items, encoded), total=len(items), desc=desc):
                if img is None:
                    bad.append(why)
                    continue
                writer.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, float(label), key, 0), img))
                key += 1
    except BrokenProcessPool:
        raise UserError(f"an encoding process of {desc} died (out of memory? use fewer --workers or a smaller "
                        f"--resize); nothing was written") from None
    finally:
        writer.close()
    return key, bad


#: Largest ``--resize``: a short side beyond it is no training input (and an encoding process
#: would run out of memory on it).
MAX_RESIZE = 4096
#: The files ``pack`` writes into OUT.
PACKED_FILES = ("train.rec", "train.idx", "val.rec", "val.idx", "classes.txt")


def pack_image_folder(src: str, out: str, *, resize: int = 0, quality: int = 95, workers: int = 0,
                      seed: int = 0, force: bool = False, skip_bad: bool = False) -> Dict[str, int]:
    """Pack ``src`` (an ImageFolder tree with ``train/`` and ``val/``) into ``out``.

    Parameters
    ----------
    src, out : str
        The ImageFolder tree and the output folder (made if missing).
    resize, quality : int
        Re-encode with the short side at ``resize`` (0: JPEGs as they are) at JPEG ``quality``.
    workers : int
        Encoding processes (0: all cores).
    seed : int
        Seed of the record order.
    force : bool
        Replace the packed files ``out`` already holds (else one line naming them).
    skip_bad : bool
        Leave images that cannot be decoded out (and count them) instead of refusing.

    Returns
    -------
    dict
        Records per split, the number of classes and of images left out.
    """
    if not 0 <= resize <= MAX_RESIZE or not 1 <= quality <= 100 or workers < 0 or seed < 0:
        raise UserError(f"--resize must be in 0..{MAX_RESIZE}, --quality in 1..100, --workers and --seed >= 0; got "
                        f"{resize}, {quality}, {workers}, {seed}")
    train_dir, val_dir = os.path.join(src, "train"), os.path.join(src, "val")
    for d in (train_dir, val_dir):
        if not os.path.isdir(d):
            raise DatasetNotFoundError(f"ImageFolder split missing: {d} (expected SRC/train/<class>/* and "
                                       f"SRC/val/<class>/*)")
    check_output(out, "OUT", force=force, replaces=PACKED_FILES)
    try:
        classes = sorted(n for n in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, n)))
        if not classes:
            raise DatasetNotFoundError(f"no class folders in {train_dir}")
        splits = {"train": list_image_folder(train_dir, classes), "val": list_image_folder(val_dir, classes)}
    except OSError as exc:
        raise DatasetNotFoundError(f"cannot list {exc.filename or src}: {exc.strerror or exc}") from None
    for k, items in enumerate(splits.values()):
        order = np.random.default_rng([seed, k]).permutation(len(items))
        items[:] = [items[i] for i in order]
    for name, items in splits.items():
        if not items:
            raise DatasetNotFoundError(f"no images in {os.path.join(src, name)}/<class>/ "
                                       f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    workers = workers or os.cpu_count() or 1
    counts: Dict[str, int] = {}
    bad: List[str] = []
    with staged_folder(out, "OUT") as tmp:  # nothing reaches OUT unless every split was packed
        for name, items in splits.items():
            counts[name], left_out = _write_split(items, os.path.join(tmp, name), resize, quality, workers,
                                                  f"pack {name}")
            bad += left_out
        if bad and not skip_bad:
            raise UserError(f"{len(bad)} image(s) cannot be packed; the first: {bad[0]}; fix or remove them, or "
                            f"add --skip-bad to leave them out (nothing was written)")
        for name in splits:
            if counts[name] == 0:
                raise DatasetNotFoundError(f"no image of {os.path.join(src, name)} could be decoded")
        with open(os.path.join(tmp, "classes.txt"), "w", encoding="utf-8") as f:
            f.writelines(f"{c}\n" for c in classes)
    for name in splits:
        LOG.info("packed %d %s images into %s.rec", counts[name], name, os.path.join(out, name))
    if bad:
        LOG.warning("left out %d image(s) that cannot be decoded, the first: %s", len(bad), bad[0])
    return {"train": counts["train"], "val": counts["val"], "classes": len(classes), "skipped": len(bad)}
