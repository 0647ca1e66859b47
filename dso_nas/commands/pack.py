"""The ``pack`` subcommand: an ImageFolder tree into RecordIO files."""
from __future__ import annotations

import argparse
import json

from .table import Command

__all__ = ["PACK"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder holding train/<class>/ and val/<class>/")
    p.add_argument("out", metavar="OUT", help="output folder (becomes data.root)")
    p.add_argument("--resize", type=int, default=0, metavar="N",
                   help="re-encode every image with its short side resized to N (0: JPEGs as they are)")
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG quality of re-encoded images")
    p.add_argument("--workers", type=int, default=0, metavar="W", help="encoding processes (0: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the record order (records are shuffled once)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out images that cannot be decoded (default: refuse, naming the first and the count)")
    p.add_argument("--force", action="store_true", help="replace the packed files OUT already holds")


def _pack(args: argparse.Namespace) -> int:
    from ..data.pack import pack_image_folder  # noqa: PLC0415 - defers the slow MXNet import

    print(json.dumps(pack_image_folder(args.src, args.out, resize=args.resize, quality=args.quality,
                                       workers=args.workers, seed=args.seed, force=args.force,
                                       skip_bad=args.skip_bad)))
    return 0


PACK = Command("pack", "pack an ImageFolder tree (train/<class>/*, val/<class>/*) into train/val .rec + .idx",
               ("/data/imagenet /data/imagenet-rec", "runs/fmnist_folder runs/fmnist_rec --resize 64"),
               _pack, _arguments, logs=True)
