"""DARTS' genotype notation, read and written: ``Genotype(normal=[(op, input), ...], normal_concat=[...],
reduce=[...], reduce_concat=[...])``.

A genotype lists each cell's ``(op, input)`` pairs flat, two per intermediate node (pairs
``2k`` and ``2k + 1`` make node ``k + 2``), and the nodes the cell concatenates. The forms that
DARTS, P-DARTS, PC-DARTS and NASP print or keep in their ``genotypes.py`` are all read:

* keywords or positional arguments (``Genotype(normal, normal_concat, reduce, reduce_concat)``,
  the namedtuple's field order), or a mix;
* ``normal_concat=[2, 3, 4, 5]``, a tuple, ``range(2, 6)`` or ``list(range(2, 6))``;
* a module prefix (``genotypes.Genotype(...)``), an assignment (``DARTS_V2 = Genotype(...)``),
  comments, any whitespace and line breaks;
* NASP's own op names (:data:`OP_ALIASES`).

The text is parsed with :mod:`ast` and only literals are read from it: nothing is evaluated.
:func:`format_genotype` writes DARTS' notation back (our op names, lists for ``concat``), so
``parse_genotype(format_genotype(arch)) == arch``. Every bad input is one
:class:`~dso_nas.errors.ArchitectureError` line starting ``genotype:``.

From the command line: ``dso-nas import-genotype`` and ``dso-nas export-genotype``
(:mod:`dso_nas.commands.genotype`).
"""
from __future__ import annotations

import ast
from typing import Any, Dict, List, Optional, Tuple

from ...errors import ArchitectureError
from .arch import CELL_KINDS, DartsArchitecture

__all__ = ["GENOTYPE_FIELDS", "OP_ALIASES", "PER_NODE", "parse_genotype", "format_genotype", "canonical_op"]

#: The fields of DARTS' ``Genotype`` namedtuple, in its positional order.
GENOTYPE_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
#: The ``(op, input)`` pairs per intermediate node in DARTS' notation.
PER_NODE = 2
#: Op names of other code bases that differ from ours, and our name for each. NASP's code
#: (xujinfan/NASP-codes ``genotypes.py``, its 12-op space) names these five ops its own way;
#: a genotype may use either name, :func:`format_genotype` writes ours.
OP_ALIASES: Dict[str, str] = {
    "conv 1x1": "conv_1x1",       # NASP
    "conv 3x3": "conv_3x3",       # NASP
    "sep_3x3": "sep_conv_3x3",    # NASP
    "sep_5x5": "sep_conv_5x5",    # NASP
    "sep_7x7": "sep_conv_7x7",    # NASP
}
#: The longest ``range(...)`` read as a ``concat`` (a cell has far fewer nodes).
_MAX_RANGE = 1000


def _fail(message: str) -> ArchitectureError:
    return ArchitectureError(f"genotype: {message}")


def canonical_op(name: str) -> str:
    """Our name of op ``name`` (:data:`OP_ALIASES`; other names unchanged)."""
    return OP_ALIASES.get(name, name)


def _call(text: str) -> ast.Call:
    """The ``Genotype(...)`` call of ``text``: the single statement, an expression or an assignment."""
    if not isinstance(text, str):
        raise _fail(f"expected the text of a Genotype(...), got {type(text).__name__}")
    if not text.strip():
        raise _fail("empty text; expected Genotype(normal=[...], normal_concat=[...], reduce=[...], "
                    "reduce_concat=[...])")
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except (SyntaxError, ValueError) as e:  # ValueError: a NUL byte
        where = f" (line {e.lineno})" if getattr(e, "lineno", None) else ""
        msg = getattr(e, "msg", None) or str(e)
        raise _fail(f"cannot be parsed{where}: {msg}; expected Genotype(normal=[...], ...)") from None
    if len(tree.body) != 1:
        raise _fail(f"the text holds {len(tree.body)} statements; give one Genotype(...) (or NAME = Genotype(...))")
    stmt = tree.body[0]
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        value = stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        value = stmt.value
    elif isinstance(stmt, ast.Expr):
        value = stmt.value
    else:
        raise _fail(f"not a Genotype(...) call: got {_source(stmt)!r}")
    if not (isinstance(value, ast.Call) and _callee(value.func) == "Genotype"):
        raise _fail(f"not a Genotype(...) call: got {_source(value)!r}")
    return value


def _callee(func: ast.AST) -> str:
    """The last name of a callee (``genotypes.Genotype`` -> ``Genotype``), ``?`` for anything else."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        base = func.value
        while isinstance(base, ast.Attribute):
            base = base.value
        return func.attr if isinstance(base, ast.Name) else "?"
    return "?"


def _fields(call: ast.Call) -> Dict[str, ast.AST]:
    """The call's argument of each field (positional in :data:`GENOTYPE_FIELDS` order, or keyword)."""
    if len(call.args) > len(GENOTYPE_FIELDS):
        raise _fail(f"Genotype takes {len(GENOTYPE_FIELDS)} fields {list(GENOTYPE_FIELDS)}, got {len(call.args)} "
                    "positional arguments")
    if any(isinstance(a, ast.Starred) for a in call.args):
        raise _fail("*arguments cannot be read; write each field out")
    fields = dict(zip(GENOTYPE_FIELDS, call.args))
    for kw in call.keywords:
        if kw.arg is None:
            raise _fail("**arguments cannot be read; write each field out")
        if kw.arg not in GENOTYPE_FIELDS:
            raise _fail(f"unknown field {kw.arg!r}; Genotype has {list(GENOTYPE_FIELDS)}")
        if kw.arg in fields:
            raise _fail(f"field {kw.arg!r} given twice")
        fields[kw.arg] = kw.value
    missing = [f for f in GENOTYPE_FIELDS if f not in fields]
    if missing:
        raise _fail(f"missing field(s) {missing}; Genotype needs {list(GENOTYPE_FIELDS)}")
    return fields


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pairs(node: ast.AST, kind: str) -> List[Tuple[str, int]]:
    """The ``(op, input)`` pairs of field ``kind``, op names made ours."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _fail(f"'{kind}' must be a list of (op, input) pairs written out, got {_source(node)}") from None
    if not isinstance(value, (list, tuple)):
        raise _fail(f"'{kind}' must be a list of (op, input) pairs, got {_source(node)}")
    pairs = []
    for k, pair in enumerate(value):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) and _is_int(pair[1])):
            raise _fail(f"'{kind}' entry {k} is {pair!r}, not an (op, input) pair such as ('sep_conv_3x3', 0)")
        pairs.append((canonical_op(pair[0]), pair[1]))
    if not pairs or len(pairs) % PER_NODE:
        raise _fail(f"'{kind}' has {len(pairs)} (op, input) pairs; DARTS' notation has {PER_NODE} per node, "
                    "so an even, non-zero number")
    return pairs


def _concat(node: ast.AST, field: str) -> List[int]:
    """The node numbers of field ``field``: a list or tuple of ints, ``range(...)`` or ``list(range(...))``."""
    if (isinstance(node, ast.Call) and _callee(node.func) in ("list", "tuple") and len(node.args) == 1
            and not node.keywords and isinstance(node.func, ast.Name)):
        node = node.args[0]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        try:
            bounds = [ast.literal_eval(a) for a in node.args]
        except (ValueError, TypeError, SyntaxError):
            bounds = None
        if node.keywords or not bounds or len(bounds) > 3 or not all(_is_int(b) for b in bounds) \
                or (len(bounds) == 3 and bounds[2] == 0):
            raise _fail(f"'{field}' must be range(START, STOP) of integers, got {_source(node)}")
        nodes = range(*bounds)
        if len(nodes) > _MAX_RANGE:
            raise _fail(f"'{field}' {_source(node)} is out of range: a cell has far fewer nodes")
        return list(nodes)
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
        raise _fail(f"'{field}' must be a list of node numbers or range(START, STOP), got {_source(node)}")
    return list(value)


def _source(node: ast.AST, limit: int = 60) -> str:
    """The node as source text, cut to ``limit`` characters."""
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for the message
        text = type(node).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_genotype(text: str, *, in_channels: int = 3, meta: Optional[Dict[str, Any]] = None) -> DartsArchitecture:
    """The architecture of a genotype's text.

    Parameters
    ----------
    text : str
        ``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])`` in any
        of the forms the module docstring lists.
    in_channels : int
        The channels of the images the network reads.
    meta : dict, optional
        The architecture's ``meta`` (where the genotype comes from).

    Raises
    ------
    ArchitectureError
        One line starting ``genotype:``: text that is not one ``Genotype(...)`` call, a missing,
        unknown or repeated field, an op outside the DARTS space's op set, an input or a
        ``concat`` node out of range, pairs that do not make nodes of two.
    """
    if not _is_int(in_channels) or in_channels < 1:
        raise _fail(f"in_channels must be a positive integer, got {in_channels!r}")
    fields = _fields(_call(text))
    cells = {}
    for kind in CELL_KINDS:
        cells[kind] = (_pairs(fields[kind], kind), _concat(fields[f"{kind}_concat"], f"{kind}_concat"))
    try:
        return DartsArchitecture.from_pairs(cells["normal"][0], cells["normal"][1], cells["reduce"][0],
                                            cells["reduce"][1], in_channels=in_channels, meta=meta,
                                            per_node=PER_NODE)
    except ArchitectureError as e:
        raise _fail(str(e)) from None


def format_genotype(arch: Any) -> str:
    """DARTS' notation of a DARTS architecture, on one line: ``Genotype(normal=[('sep_conv_3x3', 0), ...],
    normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[...])``.

    Raises
    ------
    ArchitectureError
        ``arch`` is not a DARTS architecture (the message names its space), or a node of a cell
        does not have exactly two entries (a cell derived by DSO-NAS keeps every entry whose λ
        is non-zero; ``model.darts.derive=darts`` derives DARTS' two per node).
    """
    if not isinstance(arch, DartsArchitecture):
        space = arch.to_dict().get("space", "?") if hasattr(arch, "to_dict") else type(arch).__name__
        raise ArchitectureError(f"genotype: a {space!r} architecture has no DARTS genotype; "
                                "only space 'darts' architectures do")
    parts = []
    for kind in CELL_KINDS:
        cell = arch.cell(kind)
        for j, node in enumerate(cell.nodes, start=2):
            if len(node) != PER_NODE:
                raise ArchitectureError(
                    f"genotype: {kind} cell node {j} has {len(node)} entries, DARTS' genotype notation exactly "
                    f"{PER_NODE}; derive the cell with model.darts.derive=darts to write it as a genotype")
        pairs = [(op, int(i)) for node in cell.nodes for op, i in node]
        parts.append(f"{kind}={pairs!r}, {kind}_concat={[int(c) for c in cell.concat]!r}")
    return f"Genotype({', '.join(parts)})"
