"""The subcommands that measure or write out a network without training it: ``info``,
``export`` and ``latency``."""
from __future__ import annotations

import argparse
import json
import os

from .table import Command, add_config_args

__all__ = ["INFO", "EXPORT", "LATENCY"]


def _info_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--arch", metavar="ARCH_FILE", help="report a derived architecture instead of the supernet")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--latency", action="store_true",
                   help="with --arch: add the exported net's batch-1 latency (MXNet symbol; onnxruntime if installed)")


def _info(args: argparse.Namespace) -> int:
    from .. import run  # noqa: PLC0415 - defers the slow MXNet import

    info = run.info(args.config, args.overrides, arch_path=args.arch, latency=args.latency)
    print(json.dumps(info, indent=None if args.json else 2, sort_keys=False))
    return 0


def _export_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--arch", metavar="ARCH_FILE",
                   help="architecture YAML (optional with --checkpoint, which holds one)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="a retrain.ckpt, or its run folder; none: seeded initial weights")
    p.add_argument("--format", default="all", choices=("mxnet", "onnx", "all"), help="files to write (default: all)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: export/ beside the arch or checkpoint)")
    p.add_argument("--input-size", type=int, metavar="N", help="input side (default: the dataset's)")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="input batch of the exported graph (default: 1)")
    p.add_argument("--force", action="store_true", help="replace the exported files the --out folder already holds")


def _export(args: argparse.Namespace) -> int:
    from ..run.export import FORMATS, export  # noqa: PLC0415 - defers the slow MXNet import

    source = args.arch or args.checkpoint or ""
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(source)) if os.path.isfile(source)
                                   else os.path.abspath(source), "export")
    formats = FORMATS if args.format == "all" else (args.format,)
    print(json.dumps(export(args.arch, args.checkpoint, args.config, args.overrides, out, formats=formats,
                            batch=args.batch, input_size=args.input_size, latency=True, force=args.force)))
    return 0


def _latency_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--device", choices=("cpu", "gpu"), help="measure on this device (default: the config's context)")
    p.add_argument("--arch", action="append", default=[], metavar="ARCH_FILE",
                   help="also compare the table's prediction with the measured latency of this net (repeatable)")


def _latency(args: argparse.Namespace) -> int:
    from ..run.latency import latency  # noqa: PLC0415 - defers the slow MXNet import

    device = [f"context={args.device}"] if args.device else []
    print(json.dumps(latency(args.config, [*device, *args.overrides], args.arch)))
    return 0


INFO = Command("info", "parameters, FLOPs, MAC and λ counts without training",
               ("--config experiments/cifar/search.yaml --json",
                "--config experiments/fashion_mnist/search.yaml --arch runs/fashion_mnist/architecture.yaml"),
               _info, _info_arguments)
EXPORT = Command("export", "export a derived network as MXNet symbol/params and ONNX files, checked",
                 ("--arch runs/cifar/architecture.yaml --checkpoint runs/cifar/retrain --out runs/cifar/export",
                  "--arch experiments/mobile/reference/mobilenet_v2.yaml --format onnx --out /tmp/mbv2"),
                 _export, _export_arguments, logs=True)
LATENCY = Command("latency", "build the latency lookup table of a config's supernet; check the predictor on nets",
                  ("--config experiments/mobile/search_cpu.yaml",
                   "--config experiments/mobile/search_gpu.yaml --device gpu "
                   "--arch runs/mobile_search_gpu/architecture.yaml"),
                  _latency, _latency_arguments, logs=True)
