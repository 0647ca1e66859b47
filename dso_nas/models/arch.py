"""The searched architecture: derivation from λ and the architecture file.

After the search, an edge whose scaling factor λ is exactly zero is removed (TPAMI
§3.2: "if λ is zero, the corresponding edge can be removed safely and isolated nodes
can also be pruned"). What is left of a block is a :class:`Cell`: the kept operations,
the kept edges between them and which of them feed the block output. A whole network
is an :class:`Architecture`: the network layout (stem, stages, widths, levels, ops) plus
one cell (``share`` scope) or one cell per normal block (``full`` scope).

The architecture file is YAML and round-trips exactly (``save`` → ``load`` → ``save``
gives the same bytes). A cell is a list of its kept ops, for example::

    cells:
    - - {node: '1.0', op: sep_conv_3x3, inputs: [in], output: false}
      - {node: '2.1', op: sep_conv_5x5, inputs: [in, '1.0'], output: true}

Node names are those of :func:`dso_nas.models.space.node_name`: ``"in"`` is the block
input and ``"<level>.<op index>"`` an operation (levels from 1, op index into ``ops``).
An empty list is a cell whose every op was pruned: the identity block.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import yaml

from ..errors import ArchitectureError
from .space import INPUT, Node, block_edges, node_name, num_lambda, op_nodes, output_node, parse_node

ARCH_VERSION = 1
SPACES = ("normal",)
STEMS = ("cifar", "imagenet")
SCOPES = ("share", "full")

_LAYOUT_KEYS = ("space", "stem", "in_channels", "stem_channels", "channels", "blocks", "levels", "ops")
_ARCH_KEYS = ("version",) + _LAYOUT_KEYS + ("scope", "cells", "meta")
_OP_KEYS = ("node", "op", "inputs", "output")


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class KeptOp:
    """One operation that survived pruning.

    Attributes
    ----------
    level : int
        Level of the op, ``1..M``.
    index : int
        Index of the op in the searched op list (its column in the block).
    op : str
        Op name, ``ops[index]``.
    inputs : tuple of str
        Names of the kept nodes it sums (``"in"`` first, then earlier ops row-major).
    output : bool
        Whether it feeds the block output (is concatenated before the 1x1 reduction).
    """

    level: int
    index: int
    op: str
    inputs: Tuple[str, ...]
    output: bool

    @property
    def node(self) -> str:
        """The op's node name ``"<level>.<index>"``."""
        return f"{self.level}.{self.index}"

    def to_dict(self) -> Dict[str, Any]:
        """The YAML entry of the op."""
        return {"node": self.node, "op": self.op, "inputs": list(self.inputs), "output": self.output}


@dataclass(frozen=True)
class Cell:
    """The kept part of one block: its ops in level-major order (empty = identity block)."""

    ops: Tuple[KeptOp, ...] = ()

    @property
    def is_identity(self) -> bool:
        """True when every op was pruned: the block is the identity mapping."""
        return not self.ops

    @property
    def output_nodes(self) -> List[str]:
        """Names of the ops concatenated into the block output, in level-major order."""
        return [k.node for k in self.ops if k.output]

    def edges(self) -> List[Tuple[str, str]]:
        """Every kept edge ``(src, dst)`` by node name, the output node being ``"out"``.

        Level-1 ops have their (λ-free) edge from ``"in"`` listed too.
        """
        edges = [(src, k.node) for k in self.ops for src in k.inputs]
        return edges + [(k.node, "out") for k in self.ops if k.output]

    def mask(self, levels: int, n_ops: int) -> np.ndarray:
        """Boolean flat λ mask (``block_edges`` order) that is true exactly on the kept edges.

        Deriving a cell from this mask gives the cell back.
        """
        kept = set(self.edges())
        return np.array([(node_name(s, levels), node_name(d, levels)) in kept
                         for s, d in block_edges(levels, n_ops)], dtype=bool)

    def to_list(self) -> List[Dict[str, Any]]:
        """The YAML form of the cell: a list of op entries."""
        return [k.to_dict() for k in self.ops]

    @classmethod
    def from_list(cls, entries: Any, levels: int, ops: Sequence[str], where: str = "cell") -> "Cell":
        """Parse and validate the YAML form of a cell.

        Raises
        ------
        ArchitectureError
            On any malformed entry, an unknown op, an input that is not a kept node of
            an earlier level, or an op that reaches neither the output nor a kept op.
        """
        if not isinstance(entries, list):
            raise ArchitectureError(f"{where} must be a list of op entries, got {_type(entries)}")
        kept: Dict[Node, KeptOp] = {}
        for i, entry in enumerate(entries):
            k = _parse_op(entry, levels, ops, f"{where} entry {i}")
            node = (k.level, k.index)
            if node in kept:
                raise ArchitectureError(f"{where} lists node {k.node} twice")
            kept[node] = k
        for node in sorted(kept):
            k = kept[node]
            for name in k.inputs:
                src = parse_node(name, levels)
                if src != INPUT and (src not in kept or src[0] >= node[0]):
                    raise ArchitectureError(
                        f"{where}: node {k.node} reads {name}, which is not a kept op of an earlier level"
                    )
        consumed = {name for k in kept.values() for name in k.inputs}
        for k in kept.values():
            if not k.output and k.node not in consumed:
                raise ArchitectureError(f"{where}: node {k.node} feeds neither the output nor a kept op")
        return cls(tuple(kept[n] for n in sorted(kept)))


def _type(value: Any) -> str:
    return type(value).__name__


def _parse_op(entry: Any, levels: int, ops: Sequence[str], where: str) -> KeptOp:
    """Validate one ``{node, op, inputs, output}`` entry; inputs come back in λ order."""
    if not isinstance(entry, dict):
        raise ArchitectureError(f"{where} must be a mapping with keys {list(_OP_KEYS)}, got {_type(entry)}")
    _check_keys(entry, _OP_KEYS, (), where)
    try:
        level, index = parse_node(str(entry["node"]), levels)
    except ValueError:
        level, index = -1, -1
    if not 1 <= level <= levels:
        raise ArchitectureError(
            f"{where}: bad node name {entry['node']!r} (expected '<level>.<op index>', level 1..{levels})")
    if index >= len(ops):
        raise ArchitectureError(f"{where}: node {level}.{index} has op index {index}, but only {len(ops)} ops")
    if entry["op"] != ops[index]:
        raise ArchitectureError(f"{where}: node {level}.{index} is op {ops[index]!r}, not {entry['op']!r}")
    if not isinstance(entry["output"], bool):
        raise ArchitectureError(f"{where}: 'output' must be true or false, got {entry['output']!r}")
    inputs = entry["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise ArchitectureError(f"{where}: 'inputs' must be a non-empty list of node names, got {inputs!r}")
    parsed: List[Node] = []
    for name in inputs:
        try:
            src = parse_node(str(name), levels)
        except ValueError:
            raise ArchitectureError(
                f"{where}: bad input node name {name!r} (expected 'in' or '<level>.<op index>', level 1..{levels})"
            ) from None
        if src == output_node(levels) or src[1] >= len(ops) or src in parsed:
            raise ArchitectureError(f"{where}: bad or repeated input node {name!r}")
        parsed.append(src)
    if level == 1 and parsed != [INPUT]:
        raise ArchitectureError(f"{where}: a level-1 op reads only the block input, got inputs {inputs!r}")
    ordered = tuple(node_name(n, levels) for n in sorted(parsed))
    return KeptOp(level, index, ops[index], ordered, entry["output"])


def _check_keys(d: Mapping[str, Any], required: Sequence[str], optional: Sequence[str],
                where: str) -> None:
    unknown = [k for k in d if k not in required and k not in optional]
    if unknown:
        valid = ", ".join(list(required) + list(optional))
        raise ArchitectureError(f"{where}: unknown key {unknown[0]!r} (valid keys: {valid})")
    missing = [k for k in required if k not in d]
    if missing:
        raise ArchitectureError(f"{where}: missing key {missing[0]!r}")


def derive_block(lam: np.ndarray, levels: int, ops: Sequence[str]) -> Cell:
    """The cell left after removing every edge whose λ is exactly zero.

    An op is dead when it has no live input (levels >= 2; level-1 ops always read the
    block input) or when its output reaches neither the block output nor a live op.
    Both rules are applied until nothing changes; edges from or to dead ops go too.

    Parameters
    ----------
    lam : numpy.ndarray
        The block's flat λ vector in :func:`dso_nas.models.space.block_edges` order.
    levels : int
        M, the number of levels.
    ops : sequence of str
        The N searched op names, in op-index order.

    Returns
    -------
    Cell
        The kept ops; an empty cell is the identity block.
    """
    n_ops = len(ops)
    lam = np.asarray(lam).reshape(-1)
    if lam.size != num_lambda(levels, n_ops):
        raise ValueError(f"a block of {levels} levels x {n_ops} ops has {num_lambda(levels, n_ops)} λ, "
                         f"got {lam.size}")
    out = output_node(levels)
    live = [e for e, v in zip(block_edges(levels, n_ops), lam) if v != 0]
    alive: Set[Node] = set(op_nodes(levels, n_ops))
    changed = True
    while changed:
        # An op lives when something live reaches it and it reaches something live.
        has_input = {dst for src, dst in live if src == INPUT or src in alive}
        has_output = {src for src, dst in live if dst == out or dst in alive}
        keep = {n for n in alive if (n[0] == 1 or n in has_input) and n in has_output}
        changed = keep != alive
        alive = keep
    kept = []
    for node in sorted(alive):
        if node[0] == 1:
            inputs: Tuple[str, ...] = ("in",)
        else:
            inputs = tuple(node_name(s, levels) for s, d in live if d == node and (s == INPUT or s in alive))
        kept.append(KeptOp(node[0], node[1], ops[node[1]], inputs, (node, out) in live))
    return Cell(tuple(kept))


# ------------------------------------------------------------------ architecture


@dataclass(frozen=True)
class Layout:
    """The network an architecture lives in, without its cells (TPAMI Fig. 2).

    Attributes
    ----------
    space : str
        Search space, ``"normal"``.
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
    space: str = "normal"

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
            space=model.get("space", "normal"),
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
            raise ArchitectureError(f"an architecture must be a mapping of keys, got {_type(d)}")
        _check_keys(d, [k for k in _ARCH_KEYS if k != "meta"], ("meta",), "architecture")
        if d["version"] != ARCH_VERSION:
            raise ArchitectureError(
                f"architecture version {d['version']!r} is not supported (expected {ARCH_VERSION})")
        for key, choices in (("space", SPACES), ("stem", STEMS), ("scope", SCOPES)):
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
            raise ArchitectureError(f"architecture key 'meta' must be a mapping, got {_type(meta)}")
        cells = d["cells"]
        want = 1 if d["scope"] == "share" else sum(blocks)
        if not isinstance(cells, list) or len(cells) != want:
            got = len(cells) if isinstance(cells, list) else _type(cells)
            raise ArchitectureError(f"scope '{d['scope']}' with blocks {blocks} needs {want} cell(s), got {got}")
        parsed = [Cell.from_list(c, levels, ops, f"cell {i}") for i, c in enumerate(cells)]
        return cls(stem=d["stem"], in_channels=in_channels, stem_channels=stem_channels, channels=tuple(channels),
                   blocks=tuple(blocks), levels=levels, ops=tuple(ops), scope=d["scope"], cells=parsed,
                   meta=_plain(meta), space=d["space"], version=d["version"])


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


def _known_ops() -> Optional[Set[str]]:
    """Names of the op table, or None while it cannot be imported."""
    try:
        from .ops import OPS
    except ImportError:  # pragma: no cover - the op table is part of the package
        return None
    return set(OPS)


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


# ------------------------------------------------------------------------- file


class _FlowDict(dict):
    """A mapping written on one line in the architecture file."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _FlowDict, lambda dumper, v: dumper.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))


def architecture_yaml(arch: Architecture) -> str:
    """The architecture file's text."""
    d = arch.to_dict()
    d["cells"] = [[_FlowDict(e) for e in cell] for cell in d["cells"]]
    return yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120,
                     allow_unicode=True)


def save_architecture(arch: Architecture, path: str) -> None:
    """Write the architecture file atomically (temporary file + ``os.replace``)."""
    text = architecture_yaml(arch)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".arch-", suffix=".yaml.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_architecture(path: str) -> Architecture:
    """Read and validate an architecture file.

    Raises
    ------
    ArchitectureError
        When the file is missing, unreadable, not YAML, or describes no valid architecture;
        the one-line message names the file and the problem.
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ArchitectureError(f"architecture file not found: {path}") from None
    except OSError as e:
        raise ArchitectureError(f"cannot read architecture file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ArchitectureError(f"architecture file {path} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise ArchitectureError(f"architecture file {path}{where} is not valid YAML: {problem}") from None
    try:
        return Architecture.from_dict(data)
    except ArchitectureError as e:
        raise ArchitectureError(f"architecture file {path}: {e}") from None
