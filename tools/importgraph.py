"""The package's import graph and its layers, read from the source (nothing is imported).

Used by ``tests/test_layers.py`` (no cycle, no upward edge) and ``tools/architecture.py`` (the
layer picture and module list of ``docs/architecture.md``).

Every module of ``dso_nas/`` is parsed with :mod:`ast` (nothing is imported). An edge
``a -> b`` is any import of ``b`` in ``a``: at module level or inside a function (a
function-level import defers the import, it does not remove the dependency), relative imports
resolved, ``from p import name`` pointing at the module ``p.name`` where there is one. Three
more kinds of edge:

* importing ``p.q.r`` from outside package ``p.q`` also runs ``p/q/__init__.py`` (and ``p``'s),
  which imports what that package holds: an edge to each package entered;
* ``dso_nas.config.defaults`` reads the choices a module owns by its name
  (``_owned("search.budgets", ...)``, imported when a config is validated): an edge to it;
* imports under ``if TYPE_CHECKING:`` are never run and are not edges.

The layers, bottom first (a module may import its own layer and the layers below):

0. the package's ``__init__`` and the modules everything may use: ``errors``, ``registry``,
   ``paths``, ``quiet``, ``runlog`` (logging and the epoch records), ``cuda_libs``, ``gpus``;
1. the parts that know no network: ``ops`` (the op table and cost model), ``data`` (datasets
   and loaders), ``plots`` (every figure; it draws what the layers above hand it, e.g. the
   dense space's cells through protocols, and imports none of them);
2. ``latency``: the one table type and timing protocol (it hands a piece its inputs in the op
   table's blocked layout, so it sits above ``ops``), used by the budget, the commands and
   the spaces' pieces, so it sits below all of them;
3. ``models``: stems, heads and width, built from ops;
4. ``spaces``: the search spaces, built from models and ops (the dense space calls ``plots``
   to draw its cells, downward);
5. ``tasks``: loss, metric and head per task; a segmentation head is sized by the space's
   final stride, so tasks sit above spaces, and no space knows a task;
6. ``search`` (APG-NAG, budgets) and ``engine`` (loops, devices, the distributed seam, the
   learning-rate schedules by name): they drive a space's network under a task;
7. ``config``: defaults and validation, which read their choices from every layer below (the
   registries and the modules that own a choice);
8. ``run`` (the phases, run folders, reports) and ``study``, built on config;
9. the entry points: ``commands`` (the ``dso-nas`` subcommands as a table, their parser and
   shared ending), ``cli``, ``__main__``, ``doctor``.
"""
from __future__ import annotations

import ast
import os
from typing import Dict, List, Optional, Set, Tuple

__all__ = ["LAYERS", "PACKAGE", "ROOT", "cycles", "graph", "imports", "layer", "modules"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
PACKAGE = "dso_nas"

#: Package or module (under ``dso_nas.``) -> layer; the longest matching name decides.
LAYERS: Dict[str, int] = {
    "": 0, "errors": 0, "registry": 0, "paths": 0, "quiet": 0, "runlog": 0, "cuda_libs": 0, "gpus": 0,
    "ops": 1, "data": 1, "plots": 1,
    "latency": 2,
    "models": 3,
    "spaces": 4,
    "tasks": 5,
    "search": 6, "engine": 6,
    "config": 7,
    "run": 8, "study": 8,
    "commands": 9, "cli": 9, "__main__": 9, "doctor": 9,
}

Edge = Tuple[str, str]


def modules(root: str = ROOT) -> Dict[str, Tuple[str, bool]]:
    """``module name -> (path, is a package)`` of every module of the package under ``root``."""
    out = {}
    for folder, dirs, files in os.walk(os.path.join(root, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(folder, root).replace(os.sep, ".")
        for f in sorted(files):
            if f.endswith(".py"):
                is_pkg = f == "__init__.py"
                out[rel if is_pkg else f"{rel}.{f[:-3]}"] = (os.path.join(folder, f), is_pkg)
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _owner(name: str, mods: Dict[str, Tuple[str, bool]]) -> Optional[str]:
    """The module ``name`` is, or the innermost module that holds it; ``None`` outside the package."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, mods: Dict[str, Tuple[str, bool]]) -> Dict[str, int]:
    """``imported module -> first line`` of every import statement of ``module`` (and ``_owned`` name)."""
    path, is_pkg = mods[module]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    here = module if is_pkg else module.rpartition(".")[0]
    found: Dict[str, int] = {}

    def add(name: str, line: int) -> None:
        target = _owner(name, mods)
        if target and target != module:
            found[target] = min(line, found.get(target, line))

    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[:len(here.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in mods else source, node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_owned"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            add(f"{PACKAGE}.{node.args[0].value}", node.lineno)
    return found


def _entered(importer: str, target: str, mods: Dict[str, Tuple[str, bool]]) -> List[str]:
    """The packages an import of ``target`` from ``importer`` runs: ``target``'s enclosing
    packages that ``importer`` is not inside."""
    parts = target.split(".")
    out = []
    for i in range(1, len(parts)):
        pkg = ".".join(parts[:i])
        if mods.get(pkg, ("", False))[1] and importer != pkg and not importer.startswith(pkg + "."):
            out.append(pkg)
    return out


def graph(root: str = ROOT) -> Tuple[Dict[str, Set[str]], Dict[Edge, str]]:
    """The import graph under ``root``: ``module -> imported modules`` and ``edge -> where``."""
    mods = modules(root)
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    where: Dict[Edge, str] = {}
    for module in mods:
        for target, line in imports(module, mods).items():
            for dst in [target] + _entered(module, target, mods):
                edges[module].add(dst)
                label = f"{os.path.relpath(mods[module][0], root)}:{line}"
                where.setdefault((module, dst), label if dst == target else f"{label} (enters {dst})")
    return edges, where


def layer(module: str) -> Optional[int]:
    """The layer of ``module`` by the longest matching entry of :data:`LAYERS`."""
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    parts = rel.split(".") if rel else []
    for i in range(len(parts), -1, -1):
        key = ".".join(parts[:i])
        if key in LAYERS and (i > 0 or not parts):
            return LAYERS[key]
    return None


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
