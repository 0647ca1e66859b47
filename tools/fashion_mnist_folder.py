"""Write real Fashion-MNIST images as an ImageFolder tree, to run the ImageNet path here.

    python tools/fashion_mnist_folder.py runs/imagenet_fmnist/folder --train 12000 --val 2000
    dso-nas pack runs/imagenet_fmnist/folder runs/imagenet_fmnist/rec --resize 64

``OUT/train/<k>_<name>/<i>.png`` holds the first ``--train`` training images and
``OUT/val/<k>_<name>/<i>.png`` the first ``--val`` test images (PNG, lossless, grey); the
``<k>_`` prefix makes the packer's sorted class order the dataset's label order. ImageNet,
which this machine cannot reach, is then replaced by these pixels in ImageNet's own format.
"""
from __future__ import annotations

import argparse
import os
import shutil

from PIL import Image

from dso_nas.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist
from dso_nas.errors import UserError
from dso_nas.paths import check_output
from dso_nas.runlog import progress
from toolentry import program, run_tool

CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")


def write_folder(out: str, root: str = DEFAULT_ROOT, train: int = 0, val: int = 0) -> dict:
    """Write the tree; ``train`` / ``val`` = 0 take every image. Returns the counts."""
    tx, ty, vx, vy = load_fashion_mnist(root)
    counts = {}
    for split, x, y, n in (("train", tx, ty, train), ("val", vx, vy, val)):
        n = len(x) if n <= 0 else min(n, len(x))
        for k, name in enumerate(CLASSES):
            os.makedirs(os.path.join(out, split, f"{k}_{name}"), exist_ok=True)
        for i in progress(range(n), total=n, desc=split):
            path = os.path.join(out, split, f"{int(y[i])}_{CLASSES[int(y[i])]}", f"{i:05d}.png")
            Image.fromarray(x[i][:, :, 0]).save(path)
        counts[split] = n
    return counts


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="fashion_mnist_folder", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder (gets train/ and val/)")
    p.add_argument("--root", default=DEFAULT_ROOT, help="Fashion-MNIST folder (default: Debian's)")
    p.add_argument("--train", type=int, default=0, help="first N training images (0: all 60,000)")
    p.add_argument("--val", type=int, default=0, help="first N test images as val/ (0: all 10,000)")
    p.add_argument("--force", action="store_true",
                   help="replace OUT's train/ and val/ (else a tree already there is refused: a smaller one "
                        "written over it would keep the old images)")
    return run_tool("fashion_mnist_folder", p, work, argv, settings=False)


def work(args: argparse.Namespace) -> int:
    """Check OUT, then write the tree; prints the counts."""
    if args.train < 0 or args.val < 0:
        raise UserError(f"--train and --val must be >= 0 (0: all), got {args.train}, {args.val}")
    check_output(args.out, "OUT", force=args.force, replaces=("train", "val"))
    for split in ("train", "val"):
        shutil.rmtree(os.path.join(args.out, split), ignore_errors=True)
    print(write_folder(args.out, args.root, args.train, args.val))
    return 0


if __name__ == "__main__":
    program(main)
