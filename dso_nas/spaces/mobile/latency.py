"""The mobile space's latency model: a network's batch-1 latency from a lookup table (Eq. 19).

Entries of the :class:`~dso_nas.latency.LatencyTable`, at the shapes the network
has at ``latency.input_size``:

* ``fixed:mobile|...`` - the whole derived network with the first candidate op in every block
  (the base);
* ``mb:<op>|i<C_in>|o<C_out>|h<H>|w<W>|s<stride>|r<residual>`` - one block running one op (with
  its residual add), for every candidate op at every block;
* ``noop|c<C>|h<H>|w<W>`` - a copy of the block input: the fixed cost of calling a piece alone,
  subtracted from every block entry (floored at 0).

A network is predicted as the base plus, per block, its ops' entries less the base op's: a
block of several ops (the supernet's, during the search) costs the sum of its ops, a skipped
block nothing. The latency deduction of removing one op (``LAT_c``, Eq. 19) is that op's entry.
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import numpy as np
from mxnet.gluon import HybridBlock

from ...latency import Entry, LatencyTable, Noop
from ...ops import REFERENCE, check_backend, conv_out_size
from .arch import SKIP, BlockPlan, Macro, MobileArchitecture
from .net import MobileBlock, stem_cost

__all__ = ["MobileLatencyModel", "block_key"]


def block_key(plan: BlockPlan, op: str, h: int, w: int) -> str:
    """The table key of a block running ``op`` on a ``plan.c_in x h x w`` input."""
    return f"mb:{op}|i{plan.c_in}|o{plan.c_out}|h{h}|w{w}|s{plan.stride}|r{int(plan.residual)}"


class MobileLatencyModel:
    """Predicted batch-1 latency (ms) of the mobile space's networks on one macro.

    Parameters
    ----------
    table : LatencyTable
        Where the entries are measured and kept.
    macro : Macro
        The backbone (widths at width multiplier 1).
    ops : sequence of str
        The candidate ops (``model.ops``); the first one is the base's.
    input_shape : tuple
        ``(1, C, S, S)``, the probe's input.
    build_net : callable
        ``MobileArchitecture -> uninitialized network`` (the deployed derived net).
    backend : str
        Op form of the measured pieces.
    """

    def __init__(self, table: LatencyTable, macro: Macro, ops: Sequence[str], input_shape: Tuple[int, ...],
                 build_net: Callable[[MobileArchitecture], HybridBlock], backend: str = REFERENCE):
        self.table, self.macro, self.ops = table, macro, tuple(ops)
        self.input_shape, self.build_net, self.backend = tuple(input_shape), build_net, check_backend(backend)
        self.plans = macro.plan()
        _, h, w = stem_cost(macro, *self.input_shape[2:])
        self.hw: List[Tuple[int, int]] = []
        for plan in self.plans:
            self.hw.append((h, w))
            h, w = conv_out_size(h, 3, plan.stride), conv_out_size(w, 3, plan.stride)
        self.base = MobileArchitecture.from_macro(macro, [self.ops[0]] * len(self.plans))
        params = sum(int(np.prod(p.shape)) for p in build_net(self.base).collect_params().values())
        self.fixed_key = (f"fixed:mobile|in{macro.in_channels}|fc{macro.first_conv}|fb{macro.first_block}|"
                          f"w{'-'.join(map(str, macro.widths))}|d{'-'.join(map(str, macro.depths))}|"
                          f"s{'-'.join(map(str, macro.strides))}|lc{macro.last_conv}|{self.ops[0]}|p{params}|"
                          f"in{self.input_shape[-1]}")

    def entries(self) -> List[Entry]:
        """Every piece the predictions read."""
        out: List[Entry] = [(self.fixed_key, lambda: self.build_net(self.base), [self.input_shape])]
        for plan, (h, w) in zip(self.plans, self.hw):
            x = (1, plan.c_in, h, w)
            out.append((f"noop|c{plan.c_in}|h{h}|w{w}", Noop, [x]))
            for op in self.ops:
                out.append((block_key(plan, op, h, w),
                            lambda plan=plan, op=op: MobileBlock(plan, op, backend=self.backend), [x]))
        return list({k: (k, b, s) for k, b, s in out}.values())

    def build(self, show_progress: bool = True) -> float:
        """Measure what the table lacks; the seconds spent."""
        return self.table.measure(self.entries(), show_progress)

    def op_latency(self, b: int, op: str) -> float:
        """Block ``b`` running ``op``, less the cost of calling a piece alone (0 for ``"skip"``)."""
        if op == SKIP:
            return 0.0
        plan, (h, w) = self.plans[b], self.hw[b]
        return max(0.0, self.table[block_key(plan, op, h, w)] - self.table[f"noop|c{plan.c_in}|h{h}|w{w}"])

    def predict(self, arch: Any) -> float:
        """Predicted latency of a :class:`MobileArchitecture` on this macro, or of the deriver's
        ``{"macro", "blocks": per-block op tuples}`` (several ops in a block: their sum)."""
        if isinstance(arch, MobileArchitecture):
            if arch.macro != self.macro:
                raise ValueError("the architecture's macro is not the latency model's")
            blocks = [(op,) for op in arch.ops()]
        else:
            blocks = list(arch["blocks"])
        base = self.ops[0]
        return self.table[self.fixed_key] + sum(
            sum(self.op_latency(b, op) for op in ops) - self.op_latency(b, base) for b, ops in enumerate(blocks))

    __call__ = predict
