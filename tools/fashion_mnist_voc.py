"""Build a small semantic-segmentation dataset from real Fashion-MNIST pixels.

    python tools/fashion_mnist_voc.py runs/fmnist_seg --train 2000 --val 200
    python tools/fashion_mnist_voc.py runs/fmnist_coco --format coco

Each canvas (``--side`` pixels square) holds ``--items-min``..``--items-max`` Fashion-MNIST
pictures pasted with :func:`segwrite.paste_instances` (``tools/segwrite.py``): class = label + 1 (1..10),
background 0, a 2-pixel void (255) band around the objects. Training canvases use training
pictures, validation canvases test pictures. ``--format voc`` writes ``OUT/VOC2012`` (splits
train, val, trainval) and ``OUT/VOCaug`` (SBD layout, training canvases, void as background),
the folder GluonCV's ``VOCSegmentation`` / ``VOCAugSegmentation`` take as root;
``--format coco`` writes ``OUT/{train2017,val2017}`` and ``OUT/annotations`` for
``COCOSegmentation``: one instance per item (its visible part, as the COCO category GluonCV
maps to its class), alternately polygon and uncompressed RLE. Deterministic from ``--seed``.
"""
from __future__ import annotations

import argparse
import os
from typing import List, Tuple

import numpy as np

from dso_nas.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist
from dso_nas.errors import UserError
from segwrite import coco_category_for_voc_class, paste_instances, write_coco, write_sbd, write_voc
from toolentry import program, run_tool

PROG = "fashion_mnist_voc"


def make_canvases(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, side: int,
                  items: Tuple[int, int]) -> List[tuple]:
    """``n`` (image, mask, placed) canvases pasting pictures of ``x`` (class ``y + 1``)."""
    out = []
    for _ in range(n):
        idx = rng.integers(0, len(x), int(rng.integers(items[0], items[1] + 1)))
        out.append(paste_instances([(x[i, :, :, 0], int(y[i]) + 1) for i in idx], side, rng))
    return out


def write_dataset(out: str, fmt: str = "voc", train: int = 1000, val: int = 100, side: int = 64,
                  items: Tuple[int, int] = (1, 3), seed: int = 0, fmnist: str = DEFAULT_ROOT) -> dict:
    """Build and write the dataset; returns the counts written."""
    if train < 1 or val < 0:
        raise UserError(f"--train must be >= 1 and --val >= 0 (got {train}, {val})")
    if side < 28:
        raise UserError(f"--side must be >= 28 to hold a 28x28 picture (got {side})")
    if not 0 <= items[0] <= items[1]:
        raise UserError(f"need 0 <= --items-min <= --items-max (got {items[0]}, {items[1]})")
    if not os.path.isdir(fmnist):
        raise UserError(f"Fashion-MNIST folder not found: {fmnist} (pass --fmnist DIR, the folder "
                        f"holding its four idx files)")
    tx, ty, vx, vy = load_fashion_mnist(fmnist)
    if len(tx) == 0 or (val and len(vx) == 0):
        raise UserError(f"Fashion-MNIST in {fmnist} has no pictures to paste")
    # separate streams, so --val does not change the training canvases
    train_c = make_canvases(tx, ty, train, np.random.default_rng([seed, 0]), side, items)
    val_c = make_canvases(vx, vy, val, np.random.default_rng([seed, 1]), side, items)
    if fmt == "voc":
        tn = [f"fmnist_train_{i:06d}" for i in range(train)]
        vn = [f"fmnist_val_{i:06d}" for i in range(val)]
        named = dict(zip(tn + vn, [c[:2] for c in train_c + val_c]))
        write_voc(out, named, {"train": tn, "val": vn, "trainval": tn + vn})
        write_sbd(out, {n: named[n] for n in tn}, {"train": tn, "trainval": tn})
        return {"train": train, "val": val, "instances": None}
    n_inst = 0
    for split, canvases, first in (("train2017", train_c, 1), ("val2017", val_c, train + 1)):
        images = [(f"{first + k:012d}.jpg", c[0]) for k, c in enumerate(canvases)]
        inst = []
        for k, (_, _, placed) in enumerate(canvases):
            for p in placed:
                if p.visible.any():
                    inst.append({"image": k, "category_id": coco_category_for_voc_class(p.label),
                                 "mask": p.visible, "form": ("polygon", "rle")[(n_inst + len(inst)) % 2]})
        write_coco(out, split, images, inst, first_id=first)
        n_inst += len(inst)
    return {"train": train, "val": val, "instances": n_inst}


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder")
    p.add_argument("--format", choices=("voc", "coco"), default="voc")
    p.add_argument("--train", type=int, default=1000, help="training canvases (default 1000)")
    p.add_argument("--val", type=int, default=100, help="validation canvases (default 100)")
    p.add_argument("--side", type=int, default=64, help="canvas side in pixels (default 64)")
    p.add_argument("--items-min", type=int, default=1)
    p.add_argument("--items-max", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fmnist", default=DEFAULT_ROOT, help="Fashion-MNIST folder (default: Debian's)")
    return run_tool(PROG, p, work, argv, settings=False)


def work(a: argparse.Namespace) -> int:
    """Write the dataset; one line saying what was written."""
    counts = write_dataset(a.out, a.format, a.train, a.val, a.side, (a.items_min, a.items_max), a.seed, a.fmnist)
    extra = f", {counts['instances']} instances" if counts["instances"] is not None else ""
    layout = "VOC2012/ + VOCaug/" if a.format == "voc" else "COCO train2017/ + val2017/"
    print(f"{PROG}: wrote {a.out} ({layout}): {counts['train']} train + {counts['val']} val "
          f"canvases{extra}, side {a.side}")
    return 0


if __name__ == "__main__":
    program(main)
