"""Data-path benchmark of the ImageNet loader (``make bench-data``): decoded and augmented
images per second at 224×224 through ``mx.io.ImageRecordIter``, per decoding thread count.

    python tools/bench_data.py --root runs/bench_data/rec           # RecordIO with train/val
    python tools/bench_data.py --make-root runs/bench_data          # first pack Fashion-MNIST

``--make-root`` packs the first 2,000 Fashion-MNIST training images (and 500 test images),
resized to a 375-pixel short side (about an ImageNet image's average), as JPEG RecordIO. The
loader is the package's own (:func:`dso_nas.run.loaders.load_data` on
``experiments/imagenet/search.yaml``), so the fb.resnet augmentation is the one training uses.
One JSON line per (split, threads).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from dso_nas.errors import UserError
from toolentry import program, run_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_root(out: str) -> str:
    """Pack the benchmark's images into ``out/rec`` (reused when there)."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from fashion_mnist_folder import write_folder  # noqa: PLC0415
    from dso_nas.data.pack import pack_image_folder  # noqa: PLC0415

    rec = os.path.join(out, "rec")
    if not os.path.isfile(os.path.join(rec, "val.idx")):
        write_folder(os.path.join(out, "folder"), train=2000, val=500)
        pack_image_folder(os.path.join(out, "folder"), rec, resize=375)
    return rec


def measure(root: str, threads: int, split: str, images: int, batch: int) -> dict:
    """Images/s of ``images`` images of ``split`` ("train": augmented, "val": centre crop)."""
    from dso_nas.config import load_config  # noqa: PLC0415
    from dso_nas.run.loaders import load_data  # noqa: PLC0415

    cfg = load_config(os.path.join(REPO, "experiments/imagenet/search.yaml"),
                      [f"data.root={root}", f"data.threads={threads}", "model.num_classes=10", "search.split=false",
                       f"train.batch_size={batch}", f"train.eval_batch_size={batch}"])
    loaders, _ = load_data(cfg, retrain=True)
    loader = loaders.full if split == "train" else loaders.test
    seen, epoch = 0, 0
    t0 = time.perf_counter()
    while seen < images:
        for data, _ in loader.epoch(epoch):
            data.wait_to_read()
            seen += data.shape[0]
            if seen >= images:
                break
        epoch += 1
    seconds = time.perf_counter() - t0
    return {"split": split, "threads": threads, "images": seen, "img_per_s": round(seen / seconds, 1),
            "img_per_s_per_thread": round(seen / seconds / threads, 1), "side": cfg.data.image_size}


def parser() -> argparse.ArgumentParser:
    """The tool's arguments."""
    p = argparse.ArgumentParser(prog="bench_data", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="RecordIO folder (train.rec/.idx, val.rec/.idx)")
    p.add_argument("--make-root", metavar="DIR", help="pack Fashion-MNIST at ImageNet size into DIR/rec first")
    p.add_argument("--threads", default="1,2", help="comma-separated decoding thread counts")
    p.add_argument("--images", type=int, default=4000, help="images timed per (split, threads)")
    p.add_argument("--batch", type=int, default=128)
    return p


def work(args: argparse.Namespace) -> int:
    """Pack when asked, then one JSON line per (split, threads)."""
    if not (args.make_root or args.root):
        raise UserError("give --root or --make-root")
    root = make_root(args.make_root) if args.make_root else args.root
    print(json.dumps({"machine": os.uname().machine, "cpus": os.cpu_count(), "root": root}))
    for split in ("train", "val"):
        for threads in (int(t) for t in args.threads.split(",")):
            print(json.dumps(measure(root, threads, split, args.images, args.batch)), flush=True)
    return 0


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    return run_tool("bench_data", parser(), work, argv)


if __name__ == "__main__":
    program(main)
