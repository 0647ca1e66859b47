"""The ``dso-nas`` command line.

Every subcommand takes ``--config FILE`` and trailing ``KEY=VALUE`` overrides::

    dso-nas run      --config experiments/fashion_mnist/search.yaml   # the whole chain
    dso-nas search   --config experiments/cifar/search.yaml model.scope=share
    dso-nas search   --resume runs/cifar                               # continue a killed run
    dso-nas retrain  --config experiments/cifar/retrain.yaml --arch runs/cifar/architecture.yaml
    dso-nas evaluate --checkpoint runs/cifar_retrain/retrain.ckpt
    dso-nas info     --config experiments/cifar/search.yaml --json
    dso-nas export   --arch runs/cifar/architecture.yaml --checkpoint runs/cifar/retrain --out runs/cifar/export
    dso-nas report   runs/cifar
    dso-nas pack     /data/imagenet-folder /data/imagenet-rec          # ImageFolder -> RecordIO
    dso-nas launch   --workers 2 -- dso-nas search --config ... train.kvstore=dist_sync
    dso-nas doctor                                                     # MXNet build, CUDA, GPUs, verdicts

User errors (bad path, unknown key, malformed file) end with one line on stderr and exit
status 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import traceback
from typing import List, Optional

from . import cap_onednn_isa, tune_allocator, use_all_cores
from .quiet import filter_native_stderr
from .errors import UserError

LOG = logging.getLogger("dso_nas")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="experiment YAML (only what differs from the defaults, which "
                   "are the paper's CIFAR-10 setting: CIFAR-10 needs data.root)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, dotted keys, YAML values; anywhere on the line")


def _sub(sub, name: str, help_text: str, *examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                          epilog="examples:\n" + "\n".join(f"  dso-nas {name} {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dso-nas``."""
    parser = argparse.ArgumentParser(prog="dso-nas", description="DSO-NAS: single-shot NAS via direct sparse optimization")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _sub(sub, "run", "pre-train, search, derive, retrain, evaluate and report in one run folder",
             "--config experiments/fashion_mnist/search.yaml", "--resume runs/fashion_mnist")
    _add_config_args(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")

    p = _sub(sub, "search", "pre-train the supernet, search λ, derive the architecture",
             "--config experiments/cifar/search.yaml data.root=/data/cifar model.scope=share",
             "--resume runs/cifar_search")
    _add_config_args(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search in RUN_DIR from its last checkpoint")

    p = _sub(sub, "retrain", "train a derived architecture from scratch and evaluate it",
             "--config experiments/cifar/retrain.yaml --arch runs/cifar_search/architecture.yaml data.root=/data/cifar",
             "--resume runs/cifar_retrain")
    _add_config_args(p)
    p.add_argument("--arch", metavar="ARCH_FILE", help="architecture YAML written by search or tools/make_baseline.py")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the retraining in RUN_DIR")

    p = _sub(sub, "evaluate", "test figures of a retrained checkpoint",
             "--checkpoint runs/cifar_retrain", "--checkpoint runs/cifar_retrain/retrain.ckpt data.root=/data/cifar")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a retrain.ckpt, or the run folder that holds one")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="where the data lies and how it is read: data.root, data.cache, data.threads, "
                        "data.test_limit, context, batch sizes (the rest is the checkpoint's own)")

    p = _sub(sub, "info", "parameters, FLOPs, MAC and λ counts without training",
             "--config experiments/cifar/search.yaml --json",
             "--config experiments/fashion_mnist/search.yaml --arch runs/fashion_mnist/architecture.yaml")
    _add_config_args(p)
    p.add_argument("--arch", metavar="ARCH_FILE", help="report a derived architecture instead of the supernet")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--latency", action="store_true",
                   help="with --arch: add the exported net's batch-1 latency (MXNet symbol; onnxruntime if installed)")

    p = _sub(sub, "export", "export a derived network as MXNet symbol/params and ONNX files, checked",
             "--arch runs/cifar/architecture.yaml --checkpoint runs/cifar/retrain --out runs/cifar/export",
             "--arch experiments/mobile/reference/mobilenet_v2.yaml --format onnx --out /tmp/mbv2")
    _add_config_args(p)
    p.add_argument("--arch", metavar="ARCH_FILE",
                   help="architecture YAML (optional with --checkpoint, which holds one)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="a retrain.ckpt, or its run folder; none: seeded initial weights")
    p.add_argument("--format", default="all", choices=("mxnet", "onnx", "all"), help="files to write (default: all)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: export/ beside the arch or checkpoint)")
    p.add_argument("--input-size", type=int, metavar="N", help="input side (default: the dataset's)")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="input batch of the exported graph (default: 1)")
    p.add_argument("--force", action="store_true", help="replace the exported files the --out folder already holds")

    p = _sub(sub, "latency", "build the latency lookup table of a config's supernet; check the predictor on nets",
             "--config experiments/mobile/search_cpu.yaml",
             "--config experiments/mobile/search_gpu.yaml --device gpu --arch runs/mobile_search_gpu/architecture.yaml")
    _add_config_args(p)
    p.add_argument("--device", choices=("cpu", "gpu"), help="measure on this device (default: the config's context)")
    p.add_argument("--arch", action="append", default=[], metavar="ARCH_FILE",
                   help="also compare the table's prediction with the measured latency of this net (repeatable)")

    p = _sub(sub, "report", "our figures of a run folder beside the paper's table row", "runs/fashion_mnist",
             "runs/cifar_retrain --json")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (search, retrain or run)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = _sub(sub, "pack", "pack an ImageFolder tree (train/<class>/*, val/<class>/*) into train/val .rec + .idx",
             "/data/imagenet /data/imagenet-rec", "runs/fmnist_folder runs/fmnist_rec --resize 64")
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

    p = _sub(sub, "launch", "run a training command as the workers of a distributed (ps-lite) job",
             "--workers 2 -- dso-nas search --config experiments/fashion_mnist/search.yaml train.kvstore=dist_sync",
             "--workers 2 -- dso-nas search --resume runs/fashion_mnist_search",
             "--workers 8 --servers 2 --hosts hosts.txt -- dso-nas retrain --config ... train.kvstore=dist_sync")
    p.add_argument("--workers", type=int, required=True, metavar="N", help="worker processes")
    p.add_argument("--servers", type=int, default=1, metavar="S", help="parameter-server processes")
    p.add_argument("--hosts", metavar="FILE", help="hosts file (one per line) for ssh; none: all on this machine")
    p.add_argument("--port", type=int, default=0, metavar="P", help="scheduler port (0: a free one)")
    p.add_argument("--root-uri", metavar="ADDR", help="the scheduler's address as the hosts see it")

    _sub(sub, "doctor", "MXNet's build, the CUDA libraries, the GPUs and a verdict per context, on one screen",
         "  # on a new machine, before context=gpu: what can run here, and why not")
    return parser


#: A config override on the command line.
_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line; ``KEY=VALUE`` overrides may stand anywhere on it (``launch``
    takes its worker command after ``--``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    worker_command: List[str] = []
    if argv[:1] == ["launch"] and "--" in argv:
        cut = argv.index("--")
        argv, worker_command = argv[:cut], argv[cut + 1:]
    args, extra = parser.parse_known_args(argv)
    if args.command == "launch":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)} (the worker command goes after --)")
        args.worker_command = worker_command
        return args
    stray = [e for e in extra if not _OVERRIDE.match(e)]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":  # before MXNet's import, which it reports on
        from .doctor import report  # noqa: PLC0415

        print(report())
        return 0
    try:
        from . import run  # noqa: PLC0415 - keep `--help` fast (no MXNet import)
    except OSError as e:  # the loader's: a CUDA build of MXNet without the driver or a CUDA library
        raise UserError(f"cannot load MXNet: {e} ('dso-nas doctor' tells more)") from None

    if args.command == "launch":
        from .engine.launch import check_launch, launch  # noqa: PLC0415
        from .run.workers import worker_command  # noqa: PLC0415
        from .runlog import setup_logging  # noqa: PLC0415

        setup_logging(None)
        check_launch(args.worker_command, args.workers, args.servers, args.port, args.root_uri, local=False)
        cmd = worker_command(args.worker_command, parse_args)
        return launch(cmd, args.workers, args.servers, args.port, args.hosts, args.root_uri)
    if args.command == "info":
        info = run.info(args.config, args.overrides, arch_path=args.arch, latency=args.latency)
        print(json.dumps(info, indent=None if args.json else 2, sort_keys=False))
        return 0
    if args.command == "export":
        from .run.export import FORMATS, export  # noqa: PLC0415
        from .runlog import setup_logging  # noqa: PLC0415

        setup_logging(None)
        source = args.arch or args.checkpoint or ""
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(source)) if os.path.isfile(source)
                                       else os.path.abspath(source), "export")
        formats = FORMATS if args.format == "all" else (args.format,)
        print(json.dumps(export(args.arch, args.checkpoint, args.config, args.overrides, out, formats=formats,
                                batch=args.batch, input_size=args.input_size, latency=True, force=args.force)))
        return 0
    if args.command == "latency":
        from .run.latency import latency  # noqa: PLC0415
        from .runlog import setup_logging  # noqa: PLC0415

        setup_logging(None)
        device = [f"context={args.device}"] if args.device else []
        print(json.dumps(latency(args.config, [*device, *args.overrides], args.arch)))
        return 0
    if args.command == "pack":
        from .data.pack import pack_image_folder  # noqa: PLC0415
        from .runlog import setup_logging  # noqa: PLC0415

        setup_logging(None)
        print(json.dumps(pack_image_folder(args.src, args.out, resize=args.resize, quality=args.quality,
                                           workers=args.workers, seed=args.seed, force=args.force,
                                           skip_bad=args.skip_bad)))
        return 0
    if args.command == "report":
        from .runlog import setup_logging  # noqa: PLC0415

        setup_logging(None)
        text, data = run.report(args.run_dir)
        print(json.dumps(data) if args.json else text)
        return 0
    if args.command == "evaluate":
        result = run.evaluate_checkpoint(args.checkpoint, args.overrides)
        print(json.dumps(result))
        return 0
    if args.command == "search":
        run.search(args.config, args.overrides, resume=args.resume)
        return 0
    if args.command == "retrain":
        run.retrain(args.config, args.overrides, arch_path=args.arch, resume=args.resume)
        return 0
    if args.command == "run":
        run_dir = run.run_all(args.config, args.overrides, resume=args.resume)
        print(run.report(run_dir)[0])
        return 0
    raise AssertionError(args.command)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``dso-nas``; returns the exit status."""
    args = parse_args(argv)
    if args.command != "launch":  # the launcher shares the cores among its workers itself
        use_all_cores()
    cap_onednn_isa()
    tune_allocator()
    status = _run_command(args)
    if os.environ.get("DMLC_ROLE") == "worker" and status != 0:
        # a failed worker of a distributed job: ps-lite's exit waits for the other workers,
        # which wait for this one; leave at once so the launcher stops the job
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # noqa: SLF001
    return status


def _run_command(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except UserError as e:
        print(f"dso-nas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dso-nas: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - only a distributed worker lands here (see main)
        if os.environ.get("DMLC_ROLE") != "worker":
            raise
        traceback.print_exc()
        return 1


def entry() -> None:
    """The ``dso-nas`` program: :func:`main` with MXNet's native INFO lines filtered out of
    the console (:mod:`dso_nas.quiet`; the filter is process-wide, so only the program sets it)."""
    filter_native_stderr()
    try:
        sys.exit(main())
    except BrokenPipeError:  # the output piped into a program that stopped reading (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    entry()
