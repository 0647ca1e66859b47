"""Derived cells of the dense space: what is left of a block once zero-λ edges are removed.

After the search, an edge whose scaling factor λ is exactly zero is removed (TPAMI
§3.2: "if λ is zero, the corresponding edge can be removed safely and isolated nodes
can also be pruned"). What is left of a block is a :class:`Cell`: the kept operations,
the kept edges between them and which of them feed the block output. A cell is a list of
its kept ops in the architecture file, for example::

    - - {node: '1.0', op: sep_conv_3x3, inputs: [in], output: false}
      - {node: '2.1', op: sep_conv_5x5, inputs: [in, '1.0'], output: true}

Node names are those of :func:`dso_nas.spaces.dense.graph.node_name`: ``"in"`` is the block
input and ``"<level>.<op index>"`` an operation (levels from 1, op index into ``ops``).
An empty list is a cell whose every op was pruned: the identity block. Which ops survive is
decided by :func:`dso_nas.spaces.dense.graph.live_ops`, the space's only dead-op rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ...errors import ArchitectureError
from .graph import INPUT, Node, block_edges, live_ops, node_name, num_lambda, output_node, parse_node

__all__ = ["KeptOp", "Cell", "derive_block", "check_keys", "type_name"]

_OP_KEYS = ("node", "op", "inputs", "output")


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
            raise ArchitectureError(f"{where} must be a list of op entries, got {type_name(entries)}")
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


def type_name(value: Any) -> str:
    return type(value).__name__


def _parse_op(entry: Any, levels: int, ops: Sequence[str], where: str) -> KeptOp:
    """Validate one ``{node, op, inputs, output}`` entry; inputs come back in λ order."""
    if not isinstance(entry, dict):
        raise ArchitectureError(f"{where} must be a mapping with keys {list(_OP_KEYS)}, got {type_name(entry)}")
    check_keys(entry, _OP_KEYS, (), where)
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


def check_keys(d: Mapping[str, Any], required: Sequence[str], optional: Sequence[str],
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

    The kept ops are :func:`~dso_nas.spaces.dense.graph.live_ops` of the mask ``λ != 0``; each
    keeps its live inputs (the block input, or live ops of earlier levels) and feeds the
    output when its output edge is live.

    Parameters
    ----------
    lam : numpy.ndarray
        The block's flat λ vector in :func:`dso_nas.spaces.dense.graph.block_edges` order.
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
    alive = live_ops(lam != 0, levels, n_ops)
    kept = []
    for node in sorted(alive):
        if node[0] == 1:
            inputs: Tuple[str, ...] = ("in",)
        else:
            inputs = tuple(node_name(s, levels) for s, d in live if d == node and (s == INPUT or s in alive))
        kept.append(KeptOp(node[0], node[1], ops[node[1]], inputs, (node, out) in live))
    return Cell(tuple(kept))
