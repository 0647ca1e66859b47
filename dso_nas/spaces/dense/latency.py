"""The latency model of the dense space: a derived network's batch-1 latency from a lookup table.

A derived network's forward time is predicted as the sum of its pieces, each measured once
per device (:class:`~dso_nas.latency.LatencyTable`) at the shapes the network
has at ``latency.input_size``:

* ``fixed`` - the network with every block the identity (stem, reductions, head);
* ``op`` - every candidate op at every search block's ``(C, H, W)``;
* ``sum:n`` - the element-wise sum of ``n`` maps feeding an op (``n = 2 .. 1 + (M-1)N``);
* ``reduce:n`` - concat of ``n`` op outputs, ``1 x 1`` conv to C, BN-ReLU, residual add
  (``n = 1 .. M·N``);
* ``noop`` - a block that only copies its input, at every shape: the fixed cost of calling a
  piece on its own (graph launch, layout conversion of the input), which a piece inside the
  whole network does not pay; it is subtracted from every op, sum and reduction (floored at 0).

A block's latency is the sum over its kept ops (op + the sum of its inputs) plus
``reduce:n_out``. Sums and reductions are read through a least-squares line in ``n`` fitted to
their entries at each shape (slope and intercept floored at 0): their work grows linearly
with ``n``, and the line averages out the noise of single entries, whose differences
between neighbouring ``n`` are smaller than this machine's run-to-run noise. So the
prediction can only fall when a connection is removed - the latency deduction of a
connection (Eq. 19) is non-negative by construction - and the same table gives the same
multipliers on every call.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from mxnet.gluon import HybridBlock, nn

from ...latency import Entry, LatencyTable, Noop
from ...ops import REFERENCE, BNReLU, build_op, check_backend
from .arch import Architecture, Layout
from .cell import Cell

__all__ = ["DenseLatencyModel"]

Shape = Tuple[int, int, int]


class _Sum(HybridBlock):
    """``add_n`` of its inputs."""

    def hybrid_forward(self, F, *xs):
        return F.add_n(*xs)


class _Reduce(HybridBlock):
    """The derived block's output: concat -> 1 x 1 conv -> BN-ReLU -> + block input."""

    def __init__(self, channels: int, n: int, backend: str, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(channels, 1, use_bias=False, in_channels=n * channels)
            self.bn = BNReLU(channels, True, backend=backend)

    def hybrid_forward(self, F, x, *outs):
        merged = F.concat(*outs, dim=1) if len(outs) > 1 else outs[0]
        return self.bn(self.conv(merged)) + x


def _shape_key(shape: Shape) -> str:
    return "c{}|h{}|w{}".format(*shape)


class DenseLatencyModel:
    """Predicted batch-1 latency (ms) of the dense space's derived networks.

    Parameters
    ----------
    table : LatencyTable
        Where the entries are measured and kept.
    layout : Layout
        The searched network's layout.
    scope : {"share", "full"}
    block_shapes : sequence of (C, H, W)
        Each search block's input at ``latency.input_size`` (network order).
    build_net : callable
        ``Architecture -> uninitialized network`` (the deployed derived net, width 1).
    input_shape : tuple
        ``(1, C, S, S)``, the probe's input.
    backend : str
        Op form of the measured pieces.
    """

    def __init__(self, table: LatencyTable, layout: Layout, scope: str, block_shapes: Sequence[Shape],
                 build_net: Callable[[Architecture], HybridBlock], input_shape: Tuple[int, ...],
                 backend: str = REFERENCE):
        self.table, self.layout, self.scope = table, layout, scope
        self.block_shapes = [tuple(int(v) for v in s) for s in block_shapes]
        self.build_net, self.input_shape, self.backend = build_net, tuple(input_shape), check_backend(backend)
        n_ops = len(layout.ops)
        self.max_fan_in, self.max_outputs = 1 + (layout.levels - 1) * n_ops, layout.levels * n_ops
        self._identity = Architecture.from_layout(layout, "share", [Cell()])
        # the fixed part's key names its layout and, through its parameter count, its head
        params = sum(int(np.prod(p.shape)) for p in build_net(self._identity).collect_params().values())
        self.fixed_key = (f"fixed:dense|{layout.stem}|in{layout.in_channels}|stem{layout.stem_channels}|"
                          f"ch{'-'.join(map(str, layout.channels))}|b{'-'.join(map(str, layout.blocks))}|"
                          f"p{params}|s{self.input_shape[-1]}")
        self._lines: Dict[str, Tuple[float, float]] = {}

    # -- the table -----------------------------------------------------------------------
    def entries(self) -> List[Entry]:
        """Every piece the space can hold at this layout."""
        out: List[Entry] = [(self.fixed_key, lambda: self.build_net(self._identity), [self.input_shape])]
        b = self.backend
        for shape in dict.fromkeys(self.block_shapes):
            c, h, w = shape
            x = (1, c, h, w)
            out.append((f"noop|{_shape_key(shape)}", Noop, [x]))
            for name in self.layout.ops:
                out.append((f"op:{name}|{_shape_key(shape)}|s1",
                            lambda name=name, c=c: build_op(name, c, 1, True, backend=b), [x]))
            for n in range(2, self.max_fan_in + 1):
                out.append((f"sum:{n}|{_shape_key(shape)}", _Sum, [x] * n))
            for n in range(1, self.max_outputs + 1):
                out.append((f"reduce:{n}|{_shape_key(shape)}", lambda c=c, n=n: _Reduce(c, n, b), [x] * (n + 1)))
        return out

    def build(self, show_progress: bool = True) -> float:
        """Measure what the table lacks; the seconds spent."""
        return self.table.measure(self.entries(), show_progress)

    def _piece(self, key: str, shape: Shape) -> float:
        """An entry less the cost of calling a piece alone, never below 0."""
        return max(0.0, self.table[key] - self.table[f"noop|{_shape_key(shape)}"])

    def _line(self, kind: str, shape: Shape) -> Tuple[float, float]:
        """``(intercept, slope)`` of the least-squares line through the ``kind`` entries at ``shape``."""
        key = f"{kind}|{_shape_key(shape)}"
        if key not in self._lines:
            top = self.max_fan_in if kind == "sum" else self.max_outputs
            ns = np.arange(2 if kind == "sum" else 1, top + 1, dtype=np.float64)
            ys = np.array([self._piece(f"{kind}:{int(n)}|{_shape_key(shape)}", shape) for n in ns])
            if len(ns) > 1:
                slope, intercept = np.polyfit(ns, ys, 1)
            else:
                slope, intercept = 0.0, float(ys[0]) if len(ys) else 0.0
            self._lines[key] = (max(0.0, float(intercept)), max(0.0, float(slope)))
        return self._lines[key]

    def _monotone(self, kind: str, n: int, shape: Shape) -> float:
        intercept, slope = self._line(kind, shape)
        return intercept + slope * n

    # -- predictions ---------------------------------------------------------------------
    def cell_latency(self, cell: Cell, shape: Shape) -> float:
        """Predicted latency of one derived block at input ``shape``."""
        if cell.is_identity:
            return 0.0
        total = 0.0
        for k in cell.ops:
            total += self._piece(f"op:{k.op}|{_shape_key(shape)}|s1", shape)
            if len(k.inputs) > 1:
                total += self._monotone("sum", len(k.inputs), shape)
        return total + self._monotone("reduce", len(cell.output_nodes), shape)

    def predict(self, arch: Architecture) -> float:
        """Predicted batch-1 latency (ms) of the derived network of ``arch``."""
        cells = arch.block_cells()
        return self.table[self.fixed_key] + sum(self.cell_latency(c, s) for c, s in zip(cells, self.block_shapes))

    __call__ = predict
