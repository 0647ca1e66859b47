"""Drawings of derived cells in the style of TPAMI Fig. 6.

Levels are rows (block input at the top, block output at the bottom), op ``j`` of a
level sits in column ``j``; only kept ops and kept edges are drawn, edges that skip
levels are curved so that they do not run through boxes. An identity cell is drawn
as ``input -> output``.

The space supplies the data, this module draws it: a cell is anything shaped like
:class:`DrawnCell` and an architecture anything shaped like :class:`DrawnArchitecture` (the
dense space's :class:`~dso_nas.spaces.dense.cell.Cell` and
:class:`~dso_nas.spaces.dense.arch.Architecture` are), so the plots never import a space.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

from .canvas import box_patch, figure, save

log = logging.getLogger(__name__)

__all__ = ["DrawnOp", "DrawnCell", "DrawnArchitecture", "draw_cell", "draw_architecture"]


class DrawnOp(Protocol):
    """A kept op of a cell: its node name, 1-based level (row), index (column) and op name."""

    node: str
    level: int
    index: int
    op: str


class DrawnCell(Protocol):
    """A derived cell (hashable: equal cells are drawn once): its kept ops and kept edges
    (``(source node, target node)``, with the block's ``"in"`` and ``"out"``); an identity cell
    keeps neither."""

    ops: Sequence[DrawnOp]
    is_identity: bool

    def edges(self) -> Sequence[Tuple[str, str]]: ...


class DrawnArchitecture(Protocol):
    """The cells of an architecture: ``share`` scope, one cell for every block; ``full``, one
    per block; ``levels`` and ``ops`` fix the grid the cells' ops are placed on."""

    scope: str
    levels: int
    ops: Sequence[str]
    cells: Sequence[DrawnCell]


_BOX_W, _BOX_H = 0.7, 0.42
_SKIP_OFFSET = 0.5
_COLORS = {"sep_conv": "#9ecae1", "avg_pool": "#a1d99b", "max_pool": "#fdae6b", "node": "#d9d9d9"}


def _color(op: str) -> str:
    for prefix, color in _COLORS.items():
        if op.startswith(prefix):
            return color
    return "#dadaeb"


def _positions(cell: DrawnCell, levels: int, n_ops: int) -> Dict[str, Tuple[float, float]]:
    """Centre of every drawn node: ``in`` above level 1, ``out`` below level M."""
    mid = (n_ops - 1) / 2.0
    pos = {"in": (mid, 0.0), "out": (mid, -(levels + 1.0))}
    for k in cell.ops:
        pos[k.node] = (float(k.index), -float(k.level))
    return pos


def _blocking_box(start: Tuple[float, float], end: Tuple[float, float],
                  boxes: Dict[float, List[float]]) -> Optional[Tuple[float, float]]:
    """``(t, chord x - box x)`` of the first box that the straight chord crosses, if any."""
    for y in sorted(boxes, reverse=True):
        if not end[1] < y < start[1]:
            continue
        t = (start[1] - y) / (start[1] - end[1])
        x = start[0] + t * (end[0] - start[0])
        for bx in boxes[y]:
            if abs(x - bx) < _BOX_W / 2 + 0.05:
                return t, x - bx
    return None


def _edge(ax, src: Tuple[float, float], dst: Tuple[float, float],
          boxes: Dict[float, List[float]]) -> None:
    """An arrow from the bottom of ``src`` to the top of ``dst``.

    When the straight line would run through a box of a level in between, the edge bends
    to pass that box about ``_SKIP_OFFSET`` beside its centre line, on the side the line
    was already on.
    """
    start = (src[0], src[1] - _BOX_H / 2)
    end = (dst[0], dst[1] + _BOX_H / 2)
    rad = 0.0
    blocked = _blocking_box(start, end, boxes)
    if blocked is not None:
        t, side = blocked
        length = math.hypot(end[0] - start[0], end[1] - start[1])
        # a quadratic arc3 curve lies 2·t·(1-t)·rad·length beside its chord at t;
        # going down, a positive rad bends towards -x
        rad = min(0.45, (_SKIP_OFFSET + abs(side)) / (2 * t * (1 - t) * length))
        rad = rad if side < 0 or (side == 0 and src[0] <= dst[0]) else -rad
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color="#404040", lw=0.9, shrinkA=0, shrinkB=0,
                                connectionstyle=f"arc3,rad={rad:.3f}"))


def _box(ax, xy: Tuple[float, float], label: str, color: str, fontsize: float) -> None:
    ax.add_patch(box_patch((xy[0] - _BOX_W / 2, xy[1] - _BOX_H / 2), _BOX_W, _BOX_H,
                           boxstyle="round,pad=0.02", facecolor=color, edgecolor="black", lw=0.8, zorder=3))
    ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=fontsize, zorder=4)


def draw_cell(cell: DrawnCell, levels: int, n_ops: int, path: str, title: Optional[str] = None) -> str:
    """Draw one cell to a PNG file.

    Parameters
    ----------
    cell : DrawnCell
        The derived cell.
    levels, n_ops : int
        M and N of the searched block (fix the grid the ops are placed on).
    path : str
        Output ``.png`` path (folders are created).
    title : str, optional
        Figure title.

    Returns
    -------
    str
        ``path``.
    """
    fig = figure(1.5 + 1.45 * n_ops, 1.0 + 0.95 * (levels + 2))
    ax = fig.add_subplot(1, 1, 1)
    pos = _positions(cell, levels, n_ops)
    edges = cell.edges() if not cell.is_identity else [("in", "out")]
    boxes: Dict[float, List[float]] = {}
    for name, (x, y) in pos.items():
        boxes.setdefault(y, []).append(x)
    for src, dst in edges:
        _edge(ax, pos[src], pos[dst], boxes)
    _box(ax, pos["in"], "input", _COLORS["node"], 9)
    _box(ax, pos["out"], "output", _COLORS["node"], 9)
    for k in cell.ops:
        _box(ax, pos[k.node], f"{k.op}\n({k.node})", _color(k.op), 7)
    ax.set_xlim(-0.7, n_ops - 0.3)
    ax.set_ylim(-(levels + 1.6), 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    log.debug("drawing a cell with %d ops", len(cell.ops))
    return save(fig, path)


def draw_architecture(arch: DrawnArchitecture, folder: str) -> List[str]:
    """Draw every distinct cell of an architecture.

    The ``share`` scope gives ``cell.png``; the ``full`` scope gives ``cell_bNN.png``
    named after the first block (0-based, network order) that uses the cell, with the
    title listing every block that shares it.

    Returns
    -------
    list of str
        The written PNG paths.
    """
    n_ops = len(arch.ops)
    if arch.scope == "share":
        return [draw_cell(arch.cells[0], arch.levels, n_ops, os.path.join(folder, "cell.png"),
                          title=f"DSO-NAS-share cell ({len(arch.cells[0].ops)} ops)")]
    users: Dict[DrawnCell, List[int]] = {}
    for b, cell in enumerate(arch.cells):
        users.setdefault(cell, []).append(b)
    paths = []
    for cell, blocks in users.items():
        title = f"block{'s' if len(blocks) > 1 else ''} {', '.join(map(str, blocks))} ({len(cell.ops)} ops)"
        path = os.path.join(folder, f"cell_b{blocks[0]:02d}.png")
        paths.append(draw_cell(cell, arch.levels, n_ops, path, title))
    return paths
