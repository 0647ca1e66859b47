"""The generated parts of ``docs/architecture.md``: the layer picture and the module list.

``python tools/architecture.py`` rewrites the text between each pair of markers
``<!-- generated: NAME -->`` / ``<!-- end: NAME -->`` of the document from the tree (the
layers and import edges of :mod:`importgraph`, each module's docstring summary); ``--check``
writes nothing and fails with one line when the document is stale (``make architecture``
writes, the test suite checks). The prose between the generated parts is written by hand.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
from typing import Dict, List, Optional, Sequence, Set

from importgraph import LAYERS, ROOT, graph, layer, modules
from toolentry import program, run_tool

from dso_nas.errors import UserError
from dso_nas.paths import atomic_write_bytes

__all__ = ["layer_picture", "module_list", "render", "main"]

DOC = os.path.join(ROOT, "docs", "architecture.md")
MARK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)


def summary(path: str) -> str:
    """The first sentence of a module's docstring (its first paragraph when that has no full
    stop), with reST markup as Markdown; empty when it has none."""
    with open(path, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read(), path)) or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    end = re.search(r"(?<!Fig)(?<!Eq)(?<!Eqs)(?<!e\.g)(?<!i\.e)\. (?=[A-Z`(:])", first)
    text = first[:end.start() + 1] if end else first
    text = re.sub(r":\w+:`~[\w.]*?\.?(\w+)`", r"`\1`", text)
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _members(number: int) -> List[str]:
    """The names of :data:`LAYERS` in layer ``number`` (the package itself as ``__init__``)."""
    return [name or "__init__" for name, n in LAYERS.items() if n == number]


def layer_picture(edges: Dict[str, Set[str]]) -> str:
    """The layers top first, each with its members and module count, and the arrows: how many
    import edges go from each layer to each lower one (an edge within a layer is not drawn)."""
    counts: Dict[int, Dict[int, int]] = {n: {} for n in range(max(LAYERS.values()) + 1)}
    size = {n: 0 for n in range(max(LAYERS.values()) + 1)}
    for a, targets in edges.items():
        la = layer(a)
        size[la] += 1
        for b in targets:
            lb = layer(b)
            if lb != la:
                counts[la][lb] = counts[la].get(lb, 0) + 1
    lines = ["```"]
    for n in reversed(range(max(LAYERS.values()) + 1)):
        lines.append(f"{n}  {', '.join(_members(n)):<58} {size[n]:>3} modules")
        if counts[n]:
            arrows = "  ".join(f"{m} ({c})" for m, c in sorted(counts[n].items(), reverse=True))
            lines.append(f"   └─> {arrows}")
    lines.append("```")
    lines.append("")
    lines.append("Each `└─>` line lists the lower layers the layer imports from, with the number of import "
                 "edges\n(module to module, function-level imports included) in brackets; no edge points up and "
                 "there is\nno cycle (`tests/test_layers.py`).")
    return "\n".join(lines) + "\n"


def module_list(mods: Dict[str, tuple]) -> str:
    """Every module of the package with its layer and its docstring's first line, by package."""
    rows = ["| module | layer | what it holds |", "|---|---|---|"]
    for name in sorted(mods, key=lambda m: (m.split("."), )):
        path, is_pkg = mods[name]
        rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
        text = summary(path).replace("|", "\\|")
        rows.append(f"| `{rel}` | {layer(name)} | {text} |")
    return "\n".join(rows) + "\n"


def render(text: str, root: str = ROOT) -> str:
    """``text`` with every generated part rewritten from the tree under ``root``."""
    mods = modules(root)
    edges, _ = graph(root)
    parts = {"layers": layer_picture(edges), "modules": module_list(mods)}
    found: Set[str] = set()

    def fill(m: "re.Match[str]") -> str:
        name = m.group("name")
        if name not in parts:
            raise UserError(f"{os.path.relpath(DOC, ROOT)}: unknown generated part {name!r} "
                            f"(known: {', '.join(sorted(parts))})")
        found.add(name)
        return m.group(1) + parts[name] + m.group(4)

    out = MARK.sub(fill, text)
    missing = sorted(set(parts) - found)
    if missing:
        raise UserError(f"{os.path.relpath(DOC, ROOT)}: no markers for the generated part(s) {', '.join(missing)}")
    return out


def parser() -> argparse.ArgumentParser:
    """The tool's arguments."""
    p = argparse.ArgumentParser(prog="architecture", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; fail when the document is stale")
    return p


def work(args: argparse.Namespace) -> int:
    """Rewrite (or check) the document."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    new = render(text)
    if args.check:
        if new != text:
            raise UserError(f"{os.path.relpath(DOC, ROOT)} does not match the tree; run 'make architecture'")
        return 0
    if new != text:
        atomic_write_bytes(DOC, new.encode("utf-8"))
    print(os.path.relpath(DOC, ROOT))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool; returns the exit status."""
    return run_tool("architecture", parser(), work, argv, settings=False)


if __name__ == "__main__":
    program(main)
