"""Writers of semantic-segmentation datasets in the on-disk formats GluonCV 0.10.5 reads.

* :func:`write_voc` - PASCAL VOC2012 (``gluoncv.data.VOCSegmentation``): JPEGs, palette PNG
  masks (255 = void, which the reader maps to -1) and ``ImageSets/Segmentation`` lists.
  The reader's ``split='train'`` reads ``trainval.txt``, so give that split too.
* :func:`write_sbd` - SBD / "VOCaug" (``gluoncv.data.VOCAugSegmentation``): JPEGs and
  ``cls/<name>.mat`` files with a ``GTcls`` struct. That reader also reads ``trainval.txt``
  for ``split='train'`` and, unlike the VOC one, does not map 255 to -1 (SBD has no void).
* :func:`write_coco` - COCO 2017 instances (``gluoncv.data.COCOSegmentation``), which keeps
  the categories in its ``CAT_LIST`` (see :func:`coco_category_for_voc_class`).

:func:`paste_instances` composes such images from small greyscale pictures (Fashion-MNIST).

Used by ``tools/fashion_mnist_voc.py`` and by the tests (``tests/segfiles.py``), never by the
package itself, so it lives beside the tools: a script under ``tools/`` imports it as
``segwrite``, a test through ``segfiles``.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

log = logging.getLogger(__name__)

VOID = 255
FORMS = ("polygon", "rle", "rle_compressed")


def _voc_colour(c: int) -> Tuple[int, int, int]:
    rgb = [0, 0, 0]
    for j in range(8):
        for k in range(3):
            rgb[k] |= ((c >> k) & 1) << (7 - j)
        c >>= 3
    return rgb[0], rgb[1], rgb[2]


#: The PASCAL VOC colour map, flat ``[r0, g0, b0, r1, ...]`` (768 ints); 255 is (224, 224, 192).
VOC_PALETTE: List[int] = [v for c in range(256) for v in _voc_colour(c)]


def _check_pair(name: str, image: np.ndarray, mask: Optional[np.ndarray] = None) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: image must be HxWx3 uint8, got {image.dtype} {image.shape}")
    if mask is not None and (mask.dtype != np.uint8 or mask.shape != image.shape[:2]):
        raise ValueError(f"{name}: mask must be uint8 {image.shape[:2]}, got {mask.dtype} {mask.shape}")


def save_jpeg(path: str, image: np.ndarray, quality: int = 95) -> None:
    """Save an HxWx3 uint8 RGB array as a JPEG, creating the folder."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Image.fromarray(image, "RGB").save(path, "JPEG", quality=quality)


def save_palette_png(path: str, mask: np.ndarray) -> None:
    """Save a uint8 HxW class mask as a mode-'P' PNG with :data:`VOC_PALETTE` (VOC's format)."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be HxW uint8, got {mask.dtype} {mask.shape}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    img = Image.fromarray(mask, "L").convert("P")  # L -> P keeps the indices as they are
    img.putpalette(VOC_PALETTE)
    img.save(path, "PNG")


def _write_lists(folder: str, splits: Mapping[str, Sequence[str]], names) -> None:
    os.makedirs(folder, exist_ok=True)
    for split, members in splits.items():
        missing = [n for n in members if n not in names]
        if missing:
            raise ValueError(f"split {split!r} names unknown items: {missing[:3]}")
        with open(os.path.join(folder, f"{split}.txt"), "w") as f:
            f.writelines(f"{n}\n" for n in members)


def write_voc(root: str, items: Mapping[str, Tuple[np.ndarray, np.ndarray]],
              splits: Mapping[str, Sequence[str]]) -> str:
    """Write ``root/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}``.

    Parameters
    ----------
    items : name -> (HxWx3 uint8 RGB image, HxW uint8 class mask, 255 = void)
    splits : split name -> item names; GluonCV's 'train' reads ``trainval.txt``.

    Returns the ``VOC2012`` folder.
    """
    base = os.path.join(root, "VOC2012")
    for name, (image, mask) in items.items():
        _check_pair(name, image, mask)
        save_jpeg(os.path.join(base, "JPEGImages", name + ".jpg"), image)
        save_palette_png(os.path.join(base, "SegmentationClass", name + ".png"), mask)
    _write_lists(os.path.join(base, "ImageSets", "Segmentation"), splits, items)
    log.info("VOC2012 at %s: %d items, splits %s", base, len(items), sorted(splits))
    return base


def _label_edges(seg: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label (the image border does not count)."""
    p = np.pad(seg, 1, mode="edge")
    c = p[1:-1, 1:-1]
    return (c != p[:-2, 1:-1]) | (c != p[2:, 1:-1]) | (c != p[1:-1, :-2]) | (c != p[1:-1, 2:])


def write_sbd(root: str, items: Mapping[str, Tuple[np.ndarray, np.ndarray]],
              splits: Mapping[str, Sequence[str]], *, num_classes: int = 21,
              keep_void: bool = False) -> str:
    """Write SBD's ``root/VOCaug/dataset/{img,cls}`` and ``<split>.txt`` lists.

    Each ``cls/<name>.mat`` holds a struct ``GTcls`` with ``Boundaries`` (a cell of
    ``num_classes - 1`` sparse HxW maps: the class's pixels next to another label),
    ``Segmentation`` (uint8 mask) and ``CategoriesPresent`` (classes present), as SBD's do. SBD has no
    void label and GluonCV's reader keeps 255 as it is, so void pixels become background
    unless ``keep_void``. GluonCV's 'train' split reads ``trainval.txt``.

    Returns the ``VOCaug/dataset`` folder.
    """
    base = os.path.join(root, "VOCaug", "dataset")
    os.makedirs(os.path.join(base, "cls"), exist_ok=True)
    for name, (image, mask) in items.items():
        _check_pair(name, image, mask)
        save_jpeg(os.path.join(base, "img", name + ".jpg"), image)
        seg = mask if keep_void else np.where(mask == VOID, 0, mask).astype(np.uint8)
        present = np.array([c for c in np.unique(seg) if 0 < c < num_classes], np.uint8)
        edges, empty = _label_edges(seg), scipy.sparse.csc_matrix(seg.shape, dtype=bool)
        bounds = np.empty((num_classes - 1, 1), dtype=object)
        for c in range(1, num_classes):
            bounds[c - 1, 0] = scipy.sparse.csc_matrix(edges & (seg == c)) if c in present else empty
        gt = {"Boundaries": bounds, "Segmentation": seg, "CategoriesPresent": present[:, None]}
        scipy.io.savemat(os.path.join(base, "cls", name + ".mat"), {"GTcls": gt},
                         do_compression=True)
    _write_lists(base, splits, items)
    log.info("SBD at %s: %d items, splits %s", base, len(items), sorted(splits))
    return base


def coco_category_for_voc_class(c: int) -> int:
    """The COCO category id GluonCV's ``COCOSegmentation`` turns into VOC class ``c``."""
    from gluoncv.data import COCOSegmentation
    cats = COCOSegmentation.CAT_LIST
    if not 0 < c < len(cats):
        raise ValueError(f"VOC class {c} has no COCO category (classes 1..{len(cats) - 1})")
    return int(cats[c])


_RIGHT = {(1, 0): (0, 1), (0, 1): (-1, 0), (-1, 0): (0, -1), (0, -1): (1, 0)}  # y points down


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """Outer outlines of ``mask`` traced along pixel edges, as COCO polygons ``[x0, y0, ...]``.

    One polygon per outer outline of a 4-connected component (diagonal contacts are split).
    Corner ``(x, y)`` is the top-left corner of the pixel at row ``y``, column ``x``, and
    pycocotools rasterizes such an outline back to exactly the component's pixels. Holes are
    dropped (a COCO polygon cannot carry one), so decoding fills them.
    """
    m = np.pad(np.asarray(mask, bool), 1)
    core = m[1:-1, 1:-1]
    outs: Dict[Tuple[int, int], List[Tuple[int, int]]] = {}
    # Directed pixel edges with the inside on the right (y down): outer loops have a positive
    # shoelace area, holes a negative one.
    sides = (((1, 0), (0, 0), m[:-2, 1:-1]), ((0, 1), (1, 0), m[1:-1, 2:]),
             ((-1, 0), (1, 1), m[2:, 1:-1]), ((0, -1), (0, 1), m[1:-1, :-2]))
    for d, (ox, oy), neighbour in sides:
        for y, x in zip(*np.nonzero(core & ~neighbour)):
            outs.setdefault((int(x) + ox, int(y) + oy), []).append(d)
    used = set()
    polygons = []
    for v0, dirs in list(outs.items()):
        for d0 in dirs:
            if (v0, d0) in used:
                continue
            cycle, v, d = [], v0, d0
            while (v, d) not in used:  # each edge has one successor: the edges form cycles
                used.add((v, d))
                cycle.append((v, d))
                v = (v[0] + d[0], v[1] + d[1])
                here = outs[v]
                # at a pinch (two outgoing edges) turn right, staying on this component
                d = here[0] if len(here) == 1 else _RIGHT[d] if _RIGHT[d] in here else here[0]
            corners = [cv for k, (cv, cd) in enumerate(cycle) if cycle[k - 1][1] != cd]
            xy = np.asarray(corners, np.float64)
            area = np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])
            if area > 0:
                polygons.append(xy.ravel().tolist())
    return polygons


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a bool HxW mask: column-major run lengths, zeros first."""
    flat = np.asarray(mask, bool).T.ravel()
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = ([0] if flat.size and flat[0] else []) + np.diff(bounds).astype(int).tolist()
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _segmentation(mask: np.ndarray, form: str) -> Tuple[object, int]:
    """The COCO ``segmentation`` of ``mask`` in ``form`` and its ``iscrowd`` flag."""
    if form == "polygon":
        return mask_to_polygons(mask), 0
    if form == "rle":  # real COCO's form for crowds; GluonCV's reader needs list counts
        return uncompressed_rle(mask), 1
    if form == "rle_compressed":  # pycocotools.COCO reads it; GluonCV 0.10.5's reader cannot
        from pycocotools import mask as mask_utils
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}, 1
    raise ValueError(f"unknown segmentation form {form!r} (expected one of {FORMS})")


def write_coco(root: str, split: str, images: Sequence[Tuple[str, np.ndarray]],
               instances: Sequence[dict], *, first_id: int = 1,
               categories: Optional[Mapping[int, str]] = None) -> str:
    """Write ``root/<split>/<file_name>`` JPEGs and ``root/annotations/instances_<split>.json``.

    Parameters
    ----------
    split : 'train2017' or 'val2017' (GluonCV reads train2017 for 'train', val2017 otherwise)
    images : (file_name, HxWx3 uint8 RGB) pairs; image ids count from ``first_id``
    instances : dicts ``{"image": index into images, "category_id": int, "mask": HxW bool,
        "form": "polygon" | "rle" | "rle_compressed"}``. Polygons are pixel-edge outlines
        (:func:`mask_to_polygons`, holes filled); "rle" is uncompressed (iscrowd 1), the only
        RLE GluonCV 0.10.5's ``COCOSegmentation`` decodes; "rle_compressed" has string counts.
    categories : category id -> name; by default the VOC name GluonCV maps the id to.

    GluonCV caches the images it keeps in ``annotations/{train,val}_ids.mx``; the cache of
    this split is removed so it is rebuilt. Returns the annotation file's path.
    """
    from gluoncv.data import COCOSegmentation as Seg
    from pycocotools import mask as mask_utils
    img_dir, ann_dir = os.path.join(root, split), os.path.join(root, "annotations")
    os.makedirs(ann_dir, exist_ok=True)
    records = []
    for k, (file_name, image) in enumerate(images):
        _check_pair(file_name, image)
        save_jpeg(os.path.join(img_dir, file_name), image)
        records.append({"id": first_id + k, "file_name": file_name,
                        "height": int(image.shape[0]), "width": int(image.shape[1])})
    anns = []
    for inst in instances:
        rec = records[inst["image"]]
        mask = np.asarray(inst["mask"], bool)
        if mask.shape != (rec["height"], rec["width"]):
            raise ValueError(f"{rec['file_name']}: instance mask {mask.shape} does not match the image")
        if not mask.any():
            raise ValueError(f"{rec['file_name']}: empty instance mask")
        seg, crowd = _segmentation(mask, inst.get("form", "polygon"))
        if crowd:
            area = float(mask.sum())
        else:  # a polygon's area as pycocotools rasterizes it (holes filled)
            area = float(mask_utils.area(mask_utils.merge(
                mask_utils.frPyObjects(seg, rec["height"], rec["width"]))))
        ys, xs = np.nonzero(mask)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        anns.append({"id": len(anns) + 1, "image_id": rec["id"], "category_id": int(inst["category_id"]),
                     "segmentation": seg, "area": area, "bbox": bbox, "iscrowd": crowd})
    names = {c: Seg.CLASSES[Seg.CAT_LIST.index(c)] for c in Seg.CAT_LIST[1:]}
    names.update(categories or {})
    used = sorted({a["category_id"] for a in anns} | set(categories or ()))
    cats = [{"id": c, "name": names.get(c, f"category_{c}"), "supercategory": "object"} for c in used]
    path = os.path.join(ann_dir, f"instances_{split}.json")
    with open(path, "w") as f:
        json.dump({"info": {"description": "written by tools/segwrite.py"}, "licenses": [],
                   "images": records, "annotations": anns, "categories": cats}, f)
    cache = os.path.join(ann_dir, "train_ids.mx" if split == "train2017" else "val_ids.mx")
    if os.path.exists(cache):
        os.remove(cache)
    log.info("COCO %s at %s: %d images, %d instances", split, root, len(records), len(anns))
    return path


class Placed(NamedTuple):
    """One pasted item: its class, top-left corner, full silhouette and visible part."""
    label: int
    top: int
    left: int
    silhouette: np.ndarray  # bool, the resized picture > threshold
    visible: np.ndarray  # side x side bool, where it is the topmost item


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    """Dilation of a bool array by a (2r+1) square."""
    out = m.copy()
    for axis in (0, 1):
        src, n = out.copy(), out.shape[axis]
        for k in range(1, min(r, n - 1) + 1):
            lo, hi = [slice(None)] * 2, [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - k), slice(k, n)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


def paste_instances(items: Sequence[Tuple[np.ndarray, int]], side: int, rng: np.random.Generator, *,
                    border: int = 2, threshold: int = 40, scale: Tuple[float, float] = (1.0, 2.0)
                    ) -> Tuple[np.ndarray, np.ndarray, List[Placed]]:
    """Paste greyscale pictures onto a ``side x side`` RGB canvas; return it, its class mask and
    a :class:`Placed` record per item.

    Each ``(picture, class)`` (uint8 HxW, e.g. 28x28) is resized by a random factor in
    ``scale`` (PIL bilinear, at most ``side``), tinted by a random colour and pasted at a
    random place, later items on top, over a noisy grey background. Its silhouette (resized
    picture > ``threshold``) gets its class in the mask, the rest 0, and a ``border``-pixel
    band around the silhouettes (square dilation, outside every object) gets 255, as VOC's
    void outlines.
    """
    level = rng.uniform(15, 90)
    image = level + rng.uniform(-10, 10, 3) + rng.normal(0, rng.uniform(1, 6), (side, side, 3))
    owner = np.full((side, side), -1, np.int32)
    boxes = []
    for k, (picture, label) in enumerate(items):
        picture = np.asarray(picture, np.uint8).reshape(np.shape(picture)[:2])
        f = rng.uniform(*scale)
        h, w = (int(np.clip(round(n * f), 1, side)) for n in picture.shape)
        grey = np.asarray(Image.fromarray(picture, "L").resize((w, h), Image.BILINEAR), np.float64)
        sil = grey > threshold
        tint = rng.uniform(0.3, 1.0, 3)
        top, left = int(rng.integers(0, side - h + 1)), int(rng.integers(0, side - w + 1))
        win = (slice(top, top + h), slice(left, left + w))
        image[win][sil] = grey[sil][:, None] * (tint / tint.max())
        owner[win][sil] = k
        boxes.append((int(label), top, left, sil))
    mask = np.zeros((side, side), np.uint8)
    placed = []
    for k, (label, top, left, sil) in enumerate(boxes):
        visible = owner == k
        mask[visible] = label
        placed.append(Placed(label, top, left, sil, visible))
    if border > 0:
        mask[_dilate(owner >= 0, border) & (owner < 0)] = VOID
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, placed
