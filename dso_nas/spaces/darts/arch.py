"""The DARTS space's architecture file: a normal and a reduction cell.

A cell reads the outputs of the two cells before it (inputs ``0`` and ``1``) and has
intermediate nodes ``2, 3, ...``; node ``j`` is the sum of its entries ``(op, input)`` with
``input < j``, and the cell's output is the concatenation of the nodes in ``concat``. DARTS'
own cells have two entries per node (its genotype notation, :mod:`~dso_nas.spaces.darts.genotype`);
a cell DSO-NAS derives keeps every entry whose λ is non-zero, so a node may have any number,
and a node with none is dead (nothing may read it and it is not concatenated).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

from ...errors import ArchitectureError
from ...ops import OPS
from ...ops.darts import NONE, PREFIX
from ..archfile import check_file_keys

__all__ = ["SPACE", "VERSION", "Cell", "DartsArchitecture", "CELL_KINDS"]

SPACE = "darts"
VERSION = 1
#: The two cell kinds, in file order.
CELL_KINDS = ("normal", "reduce")
_KEYS = {"version", "space", "in_channels", "normal", "reduce", "meta"}
_CELL_KEYS = {"nodes", "concat"}

Entry = Tuple[str, int]


def _op_names() -> list:
    """The DARTS space's ops: the op table's ``darts`` family, bare (a check's decoys included)."""
    return [n[len(PREFIX):] for n in OPS.names() if OPS.get(n).family == "darts"]


@dataclass(frozen=True)
class Cell:
    """One cell: per intermediate node its ``(op, input)`` entries, and the concatenated nodes."""

    nodes: Tuple[Tuple[Entry, ...], ...]
    concat: Tuple[int, ...]

    @property
    def steps(self) -> int:
        """The number of intermediate nodes."""
        return len(self.nodes)

    def entries(self) -> List[Tuple[int, str, int]]:
        """Every ``(node, op, input)`` of the cell, nodes numbered from 2."""
        return [(j + 2, op, i) for j, node in enumerate(self.nodes) for op, i in node]

    def check(self, kind: str) -> None:
        """``ArchitectureError`` naming the cell and node of an unknown op, an input out of
        range, a dead node that is read or concatenated, or a bad ``concat``."""
        if not self.nodes:
            raise ArchitectureError(f"{kind} cell: no intermediate node")
        for j, node in enumerate(self.nodes, start=2):
            for op, i in node:
                names = _op_names()
                if op not in names or op == NONE:
                    valid = [n for n in names if n != NONE]
                    raise ArchitectureError(f"{kind} cell node {j}: op {op!r} is not an op of the DARTS space; "
                                            f"valid: {valid}")
                if not 0 <= i < j:
                    raise ArchitectureError(f"{kind} cell node {j}: input {i} out of range (0..{j - 1})")
        dead = {j for j, node in enumerate(self.nodes, start=2) if not node}
        for j, op, i in self.entries():
            if i in dead:
                raise ArchitectureError(f"{kind} cell node {j} reads node {i}, which has no input")
        if not self.concat or len(set(self.concat)) != len(self.concat):
            raise ArchitectureError(f"{kind} cell: 'concat' must list distinct nodes, got {list(self.concat)}")
        for j in self.concat:
            if not 2 <= j < self.steps + 2:
                raise ArchitectureError(f"{kind} cell: concat node {j} out of range (2..{self.steps + 1})")
            if j in dead:
                raise ArchitectureError(f"{kind} cell: concat node {j} has no input")

    def to_dict(self) -> Dict[str, Any]:
        return {"nodes": [[[op, i] for op, i in node] for node in self.nodes], "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: Any, kind: str) -> "Cell":
        if not isinstance(data, dict) or set(data) != _CELL_KEYS:
            raise ArchitectureError(f"'{kind}' must be a mapping with exactly the keys {sorted(_CELL_KEYS)}")
        nodes = data["nodes"]
        if not isinstance(nodes, list):
            raise ArchitectureError(f"{kind}.nodes must be a list (one list of [op, input] per node)")
        out = []
        for j, node in enumerate(nodes, start=2):
            if not isinstance(node, list):
                raise ArchitectureError(f"{kind} cell node {j} must be a list of [op, input] entries, got {node!r}")
            entries = []
            for e in node:
                if (not isinstance(e, (list, tuple)) or len(e) != 2 or not isinstance(e[0], str)
                        or not isinstance(e[1], int) or isinstance(e[1], bool)):
                    raise ArchitectureError(f"{kind} cell node {j}: entry {e!r} is not [op, input]")
                entries.append((e[0], e[1]))
            out.append(tuple(entries))
        concat = data["concat"]
        if not isinstance(concat, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in concat):
            raise ArchitectureError(f"{kind}.concat must be a list of node numbers, got {concat!r}")
        cell = cls(tuple(out), tuple(concat))
        cell.check(kind)
        return cell


@dataclass(frozen=True)
class DartsArchitecture:
    """A normal and a reduction cell, and the channels of the images the network reads."""

    normal: Cell
    reduce: Cell
    in_channels: int = 3
    meta: Dict[str, Any] = field(default_factory=dict, compare=False)

    def cell(self, kind: str) -> Cell:
        """The ``"normal"`` or ``"reduce"`` cell."""
        return self.normal if kind == "normal" else self.reduce

    def ops(self) -> List[str]:
        """Every op of both cells, normal first."""
        return [op for kind in CELL_KINDS for _, op, _ in self.cell(kind).entries()]

    def check(self) -> None:
        """``ArchitectureError`` on a bad cell (:meth:`Cell.check`)."""
        for kind in CELL_KINDS:
            self.cell(kind).check(kind)

    def to_dict(self) -> Dict[str, Any]:
        """The file form."""
        return {"version": VERSION, "space": SPACE, "in_channels": self.in_channels,
                "normal": self.normal.to_dict(), "reduce": self.reduce.to_dict(), "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "DartsArchitecture":
        """Validate the file form (``ArchitectureError`` naming the bad key)."""
        check_file_keys(data, SPACE, VERSION, _KEYS)
        in_channels = data.get("in_channels", 3)
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ArchitectureError(f"'in_channels' must be a positive integer, got {in_channels!r}")
        for kind in CELL_KINDS:
            if kind not in data:
                raise ArchitectureError(f"the architecture has no '{kind}' cell")
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise ArchitectureError("'meta' must be a mapping")
        return cls(Cell.from_dict(data["normal"], "normal"), Cell.from_dict(data["reduce"], "reduce"),
                   in_channels, dict(meta))

    @classmethod
    def from_pairs(cls, normal: Sequence[Entry], normal_concat: Sequence[int], reduce: Sequence[Entry],
                   reduce_concat: Sequence[int], *, in_channels: int = 3, meta: Dict[str, Any] = None,
                   per_node: int = 2) -> "DartsArchitecture":
        """The architecture of DARTS' flat lists: ``per_node`` consecutive ``(op, input)`` pairs per node."""
        cells = []
        for kind, pairs, concat in (("normal", normal, normal_concat), ("reduce", reduce, reduce_concat)):
            if not pairs or len(pairs) % per_node:
                raise ArchitectureError(f"{kind}: {len(pairs)} (op, input) pairs do not make nodes of {per_node}")
            nodes = tuple(tuple((str(op), int(i)) for op, i in pairs[k:k + per_node])
                          for k in range(0, len(pairs), per_node))
            cells.append(Cell(nodes, tuple(int(c) for c in concat)))
        arch = cls(cells[0], cells[1], in_channels, dict(meta or {}))
        arch.check()
        return arch
