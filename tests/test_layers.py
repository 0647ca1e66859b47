"""The package's imports point one way: no cycles, and no module imports from a layer above it.

The graph and the layer table are :mod:`importgraph` (``tools/importgraph.py``, its docstring
lists the layers). A failure lists the offending edges by module name (with the line of the
import), so a new module either imports downward or goes in the right layer; a module missing
from ``LAYERS`` fails too.
"""
from __future__ import annotations

import ast
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from importgraph import PACKAGE, ROOT, cycles, graph, layer, modules  # noqa: E402 - the graph lives beside its other user, tools/architecture.py


def test_every_module_has_a_layer():
    missing = sorted(m for m in modules() if layer(m) is None)
    assert not missing, f"modules with no layer in tests/test_layers.py LAYERS: {missing}"


def test_no_import_from_a_layer_above():
    edges, where = graph()
    upward = [f"{a} (layer {layer(a)}) -> {b} (layer {layer(b)})  [{where[(a, b)]}]"
              for a in sorted(edges) for b in sorted(edges[a])
              if layer(b) is not None and layer(a) is not None and layer(b) > layer(a)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    edges, where = graph()
    report = []
    for component in cycles(edges):
        members = set(component)
        report.append("cycle between " + ", ".join(component) + ":")
        report += [f"    {a} -> {b}  [{where[(a, b)]}]" for a in component for b in sorted(edges[a] & members)]
    assert not report, "\n".join(report)


def test_the_checks_see_hidden_and_relative_imports(tmp_path):
    """The parser finds a cycle hidden in a function, a relative import and an upward import."""
    pkg = tmp_path / PACKAGE
    (pkg / "ops").mkdir(parents=True)
    (pkg / "run").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ops" / "__init__.py").write_text("from .table import OPS\n")
    (pkg / "ops" / "table.py").write_text("def f():\n    from .. import ops  # noqa: PLC0415\nOPS = 1\n")
    (pkg / "run" / "__init__.py").write_text("")
    (pkg / "ops" / "cost.py").write_text("from ..run import x\n")
    edges, where = graph(str(tmp_path))
    assert edges["dso_nas.ops"] == {"dso_nas.ops.table"} and edges["dso_nas.ops.table"] == {"dso_nas.ops"}
    assert cycles(edges) == [["dso_nas.ops", "dso_nas.ops.table"]]
    assert edges["dso_nas.ops.cost"] == {"dso_nas.run"} and layer("dso_nas.run") > layer("dso_nas.ops.cost")
    assert where[("dso_nas.ops.table", "dso_nas.ops")].endswith("table.py:2")


def test_every_function_level_import_says_why():
    """A function-level import only defers an import (slow, optional, or only some paths need
    it), and its line says so after ``PLC0415 -`` in its ``noqa`` comment; a dependency it hides is an edge all
    the same, which the tests above check."""
    silent = []
    for module, (path, _) in sorted(modules().items()):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = text.splitlines()
        for fn in ast.walk(ast.parse(text, path)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    said = [line.partition("PLC0415")[2] for line in lines[node.lineno - 1:node.end_lineno]]
                    if not any(tail.startswith(" - ") and tail[3:].strip() for tail in said):
                        silent.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert not silent, "function-level imports without '# noqa: PLC0415 - <why>':\n" + "\n".join(sorted(set(silent)))
