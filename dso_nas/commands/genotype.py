"""The subcommands between DARTS' genotype notation and our architecture files: ``import-genotype``
(a ``Genotype(...)`` string to a ``space: darts`` architecture file) and ``export-genotype``
(the file back to the string), both through :mod:`dso_nas.spaces.darts.genotype`."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ArchitectureError
from ..paths import check_output, read_text, read_yaml, write_error
from .table import Command

__all__ = ["IMPORT_GENOTYPE", "EXPORT_GENOTYPE", "read_genotype_text", "load_darts_architecture"]


def read_genotype_text(source: str) -> str:
    """The genotype text ``source`` names: the text itself, ``@PATH`` (a file holding it) or ``-`` (stdin)."""
    if source == "-":
        return sys.stdin.read()
    if source.startswith("@"):
        return read_text(source[1:], "genotype file", ArchitectureError)
    return source


def _where(source: str) -> str:
    """What ``meta.source`` says an imported genotype came from."""
    if source == "-":
        return "stdin"
    return source[1:] if source.startswith("@") else "command line"


def load_darts_architecture(path: str) -> Any:
    """The ``space: darts`` architecture of file ``path``; ``ArchitectureError`` (one line naming the
    file) for a file of another space, a missing or malformed file."""
    from ..spaces.darts.arch import SPACE, DartsArchitecture  # noqa: PLC0415 - defers the slow MXNet import

    data = read_yaml(path, "architecture file", ArchitectureError)
    if not isinstance(data, dict):
        raise ArchitectureError(f"architecture file {path} is not a mapping of keys")
    space = data.get("space")
    if space != SPACE:
        raise ArchitectureError(f"architecture file {path} is a space {space!r} architecture; a genotype is "
                                f"written of space '{SPACE}' architectures only")
    try:
        return DartsArchitecture.from_dict(data)
    except ArchitectureError as e:
        raise ArchitectureError(f"architecture file {path}: {e}") from None


def _import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("genotype", metavar="GENOTYPE",
                   help="Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...]) "
                        "(quote it), @FILE holding it, or - to read it from stdin")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="architecture YAML to write")
    p.add_argument("--in-channels", type=int, default=3, metavar="N",
                   help="channels of the images the network reads (default: 3)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def _import(args: argparse.Namespace) -> int:
    from ..spaces.archfile import save_architecture  # noqa: PLC0415 - defers the slow MXNet import
    from ..spaces.darts.genotype import parse_genotype  # noqa: PLC0415 - defers the slow MXNet import

    check_output(args.out, "--out", folder=False, force=args.force)
    text = read_genotype_text(args.genotype)
    arch = parse_genotype(text, in_channels=args.in_channels, meta={"source": _where(args.genotype)})
    try:
        save_architecture(arch, args.out)
    except OSError as e:
        raise write_error(e, "--out", args.out) from None
    nodes = ", ".join(f"{kind} {arch.cell(kind).steps} nodes" for kind in ("normal", "reduce"))
    print(f"wrote {args.out} (space darts: {nodes})")
    return 0


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", metavar="ARCH_FILE", help="a space 'darts' architecture file")


def _export(args: argparse.Namespace) -> int:
    from ..spaces.darts.genotype import format_genotype  # noqa: PLC0415 - defers the slow MXNet import

    try:
        text = format_genotype(load_darts_architecture(args.arch))
    except ArchitectureError as e:
        message = str(e)
        if message.startswith("genotype: "):
            raise ArchitectureError(f"architecture file {args.arch}: {message[len('genotype: '):]}") from None
        raise
    print(text)
    return 0


IMPORT_GENOTYPE = Command(
    "import-genotype", "write a DARTS genotype string (DARTS, P-DARTS, PC-DARTS, NASP) as a space 'darts' "
    "architecture file",
    ("\"$(grep '^DARTS_V2 = ' darts/cnn/genotypes.py)\" -o runs/darts_v2.yaml",
     "@genotype.txt -o runs/pdarts.yaml --force",
     "- -o runs/searched.yaml < genotype.txt"),
    _import, _import_arguments)
EXPORT_GENOTYPE = Command(
    "export-genotype", "print a space 'darts' architecture file as a DARTS genotype string",
    ("experiments/darts/reference/darts_v2.yaml",
     "runs/darts_search/architecture.yaml > genotype.txt"),
    _export, _export_arguments)
