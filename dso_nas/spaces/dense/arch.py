"""The dense space's architecture: its layout plus one cell (share) or one per block (full).

A whole network is an :class:`Architecture`: the network layout (stem, stages, widths,
levels, ops; a :class:`Layout`) plus one :class:`~dso_nas.spaces.dense.cell.Cell` (``share``
scope) or one cell per normal block (``full`` scope). The architecture file is YAML
(:mod:`dso_nas.spaces.archfile`) and round-trips exactly (``save`` → ``load`` → ``save`` gives
the same bytes)::

    version: 1
    space: dense
    stem: cifar
    ...
    scope: share
    cells:
    - - {node: '1.0', op: sep_conv_3x3, inputs: [in], output: false}
      - {node: '2.1', op: sep_conv_5x5, inputs: [in, '1.0'], output: true}
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...errors import ArchitectureError
from ...models.common import STEM_KINDS
from .cell import Cell, check_keys, derive_block, type_name

__all__ = ["ARCH_VERSION", "SPACE", "STEMS", "SCOPES", "Layout", "Architecture", "derive_architecture",
           "lambda_stats"]

ARCH_VERSION = 1
#: The name this space is registered under (:data:`dso_nas.spaces.SPACES`); ``"normal"``,
#: its name before the registry, is accepted as an alias in configs and architecture files.
SPACE = "dense"
SPACE_ALIASES = ("normal",)
STEMS = STEM_KINDS  # the stems the package builds (dso_nas.models.common)
SCOPES = ("share", "full")

_LAYOUT_KEYS = ("space", "stem", "in_channels", "stem_channels", "channels", "blocks", "levels", "ops")
_ARCH_KEYS = ("version",) + _LAYOUT_KEYS + ("scope", "cells", "meta")


@dataclass(frozen=True)
class Layout:
    """The network an architecture lives in, without its cells (TPAMI Fig. 2).

    Attributes
    ----------
    space : str
        Search space, ``"dense"``.
    stem : str
        ``"cifar"`` or ``"imagenet"``.
    in_channels : int
        Input image channels.
    stem_channels : int
        Stem output width at search time.
    channels : tuple of int
        Search-time width of each stage.
    blocks : tuple of int
        Normal blocks in each stage.
    levels : int
        M, levels per block.
    ops : tuple of str
        The N searched op names.
    """

    stem: str
    in_channels: int
    stem_channels: int
    channels: Tuple[int, ...]
    blocks: Tuple[int, ...]
    levels: int
    ops: Tuple[str, ...]
    space: str = SPACE

    @property
    def num_blocks(self) -> int:
        """Total number of normal blocks."""
        return int(sum(self.blocks))

    @staticmethod
    def from_config(model: Mapping[str, Any]) -> "Layout":
        """The layout of a ``cfg.model`` config section."""
        return Layout(
            stem=model["stem"],
            in_channels=int(model["in_channels"]),
            stem_channels=int(model["stem_channels"]),
            channels=tuple(int(c) for c in model["channels"]),
            blocks=tuple(int(b) for b in model["blocks"]),
            levels=int(model["levels"]),
            ops=tuple(model["ops"]),
            space=SPACE,
        )


@dataclass(frozen=True, kw_only=True)
class Architecture(Layout):
    """A derived network: a :class:`Layout` plus its scope and its cells.

    ``cells`` holds one cell for the ``share`` scope and one per normal block, in
    network order, for the ``full`` scope. ``meta`` is free-form (source run, λ stats).
    Build one with :meth:`from_dict` or :meth:`from_layout`, which validate.
    """

    scope: str
    cells: List[Cell]
    meta: Dict[str, Any] = field(default_factory=dict)
    version: int = ARCH_VERSION

    @property
    def layout(self) -> Layout:
        """The architecture's :class:`Layout` alone (without scope, cells and meta)."""
        return Layout(**{f.name: getattr(self, f.name) for f in fields(Layout)})

    def block_cells(self) -> List[Cell]:
        """The cell of every normal block, in network order."""
        return list(self.cells) * self.num_blocks if self.scope == "share" else list(self.cells)

    @classmethod
    def from_layout(cls, layout: Layout, scope: str, cells: Sequence[Cell],
                    meta: Optional[Dict[str, Any]] = None) -> "Architecture":
        """An architecture with the given layout and cells (validated)."""
        arch = cls(**{f.name: getattr(layout, f.name) for f in fields(Layout)}, scope=scope,
                   cells=list(cells), meta=dict(meta or {}))
        return cls.from_dict(arch.to_dict())

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (the YAML content), keys in file order."""
        return {
            "version": self.version,
            "space": self.space,
            "stem": self.stem,
            "in_channels": self.in_channels,
            "stem_channels": self.stem_channels,
            "channels": list(self.channels),
            "blocks": list(self.blocks),
            "levels": self.levels,
            "ops": list(self.ops),
            "scope": self.scope,
            "cells": [c.to_list() for c in self.cells],
            "meta": _plain(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Architecture":
        """Validate and build from :meth:`to_dict`'s form.

        Raises
        ------
        ArchitectureError
            With a one-line message naming the first problem found.
        """
        if not isinstance(d, dict):
            raise ArchitectureError(f"an architecture must be a mapping of keys, got {type_name(d)}")
        check_keys(d, [k for k in _ARCH_KEYS if k != "meta"], ("meta",), "architecture")
        if d["version"] != ARCH_VERSION:
            raise ArchitectureError(
                f"architecture version {d['version']!r} is not supported (expected {ARCH_VERSION})")
        for key, choices in (("space", (SPACE,) + SPACE_ALIASES), ("stem", STEMS), ("scope", SCOPES)):
            if d[key] not in choices:
                raise ArchitectureError(f"architecture key '{key}' must be one of {list(choices)}, got {d[key]!r}")
        in_channels = _positive_int(d, "in_channels")
        stem_channels = _positive_int(d, "stem_channels")
        levels = _positive_int(d, "levels")
        channels = _int_list(d, "channels")
        blocks = _int_list(d, "blocks")
        if len(channels) != len(blocks):
            raise ArchitectureError(f"'channels' has {len(channels)} stages but 'blocks' has {len(blocks)}")
        ops = _op_list(d["ops"])
        meta = {} if d.get("meta") is None else d["meta"]
        if not isinstance(meta, dict):
            raise ArchitectureError(f"architecture key 'meta' must be a mapping, got {type_name(meta)}")
        cells = d["cells"]
        want = 1 if d["scope"] == "share" else sum(blocks)
        if not isinstance(cells, list) or len(cells) != want:
            got = len(cells) if isinstance(cells, list) else type_name(cells)
            raise ArchitectureError(f"scope '{d['scope']}' with blocks {blocks} needs {want} cell(s), got {got}")
        parsed = [Cell.from_list(c, levels, ops, f"cell {i}") for i, c in enumerate(cells)]
        return cls(stem=d["stem"], in_channels=in_channels, stem_channels=stem_channels, channels=tuple(channels),
                   blocks=tuple(blocks), levels=levels, ops=tuple(ops), scope=d["scope"], cells=parsed,
                   meta=_plain(meta), space=SPACE, version=d["version"])


def _positive_int(d: Mapping[str, Any], key: str) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArchitectureError(f"architecture key '{key}' must be a positive integer, got {value!r}")
    return value


def _int_list(d: Mapping[str, Any], key: str) -> List[int]:
    value = d[key]
    if not isinstance(value, list) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    ):
        raise ArchitectureError(
            f"architecture key '{key}' must be a non-empty list of positive integers, got {value!r}")
    return list(value)


def _known_ops() -> Optional[List[str]]:
    """Names of the op table."""
    from ...ops import OPS  # noqa: PLC0415 - the op table imports MXNet

    return list(OPS.names())


def _op_list(value: Any) -> List[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ArchitectureError(f"architecture key 'ops' must be a non-empty list of op names, got {value!r}")
    if len(set(value)) != len(value):
        raise ArchitectureError(f"architecture key 'ops' lists an op twice: {value}")
    known = _known_ops()
    unknown = [v for v in value if known is not None and v not in known]
    if unknown:
        raise ArchitectureError(f"unknown op {unknown[0]!r} in 'ops' (known: {', '.join(sorted(known or ()))})")
    return list(value)


def _plain(value: Any) -> Any:
    """Convert NumPy scalars/arrays and tuples to plain YAML-safe Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def lambda_stats(lambdas: Sequence[np.ndarray]) -> Dict[str, Any]:
    """Summary of learned λ for ``meta``: counts of all and of non-zero factors."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in lambdas] or [np.zeros(0)])
    nonzero = flat[flat != 0]
    return {
        "total": int(flat.size),
        "nonzero": int(nonzero.size),
        "max": float(np.abs(flat).max()) if flat.size else 0.0,
        "min_nonzero": float(np.abs(nonzero).min()) if nonzero.size else 0.0,
    }


def derive_architecture(lambdas: Sequence[np.ndarray], *, scope: str, layout: Layout,
                        meta: Optional[Dict[str, Any]] = None) -> Architecture:
    """Derive every cell from the learned λ.

    Parameters
    ----------
    lambdas : sequence of numpy.ndarray
        One flat λ vector for ``share``, one per normal block (network order) for ``full``.
    scope : {"share", "full"}
        Search scope.
    layout : Layout
        The searched network's layout.
    meta : dict, optional
        Extra information stored with the architecture; λ stats and kept counts are added.

    Returns
    -------
    Architecture
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    want = 1 if scope == "share" else layout.num_blocks
    if len(lambdas) != want:
        raise ValueError(f"scope {scope!r} needs {want} λ vector(s), got {len(lambdas)}")
    cells = [derive_block(lam, layout.levels, layout.ops) for lam in lambdas]
    info = dict(meta or {})
    info["lambda"] = lambda_stats(lambdas)
    info["kept_ops"] = [len(c.ops) for c in cells]
    info["kept_edges"] = [len(c.edges()) for c in cells]
    return Architecture.from_layout(layout, scope, cells, info)
