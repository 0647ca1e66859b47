"""The DARTS cell space (Liu et al. 2019; the space NASP, P-DARTS and PC-DARTS search).

* :mod:`~dso_nas.spaces.darts.arch` - the architecture file: a normal and a reduction cell;
* :mod:`~dso_nas.spaces.darts.genotype` - DARTS' genotype notation, read and written;
* :mod:`~dso_nas.spaces.darts.plan` - the cells' positions, widths and edges;
* :mod:`~dso_nas.spaces.darts.stem` - the stem and the cell inputs' preprocessing;
* :mod:`~dso_nas.spaces.darts.supernet` - the search network with one λ per (edge, op);
* :mod:`~dso_nas.spaces.darts.net` - the evaluation network of an architecture file;
* :mod:`~dso_nas.spaces.darts.derive` - DSO-NAS's and DARTS' derivation rules.

DSO-NAS on this space: each edge's output is the λ-weighted sum of its ops, the λ of a cell
kind shared by its cells; the ℓ1 penalty, APG-NAG, the budgets, pruning and the stop rule are
the dense space's. The ops are the op table's ``darts_*`` entries (:mod:`dso_nas.ops.darts`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ConfigError
from ...ops import Cost
from ...ops import darts_op
from ...ops.darts import NONE
from ..base import BudgetBlock, HeadCost, HeadFactory, LambdaDeriver, SearchSpace
from .arch import CELL_KINDS, SPACE, Cell, DartsArchitecture
from .derive import darts_rule_mask, derive_cell, live_entries
from .net import DartsNet, darts_cost
from .plan import edges
from .stem import cell_output_hw, stem_output_hw
from .supernet import DartsSuperNet

__all__ = ["DartsSpace", "DartsArchitecture", "DartsNet", "DartsSuperNet"]

#: ``dso-nas info --arch`` without a config: DARTS' CIFAR-10 evaluation network.
_CIFAR_EVAL = ["data.name=cifar10", "model.num_classes=10", "retrain.target_params=0", "retrain.target_flops=0",
               "retrain.width_mult=1.0", "retrain.aux_weight=0", "retrain.drop_path=0"]


def _ops(cfg: Any, kind: str) -> Tuple[str, ...]:
    d = cfg.model.darts
    return tuple(d.normal_ops if kind == "normal" or not d.reduce_ops else d.reduce_ops)


class DartsSpace(SearchSpace):
    """The DARTS cell space behind the :class:`~dso_nas.spaces.base.SearchSpace` API."""

    name = SPACE
    aliases: Tuple[str, ...] = ()
    baseline_kinds: Tuple[str, ...] = ("random",)
    op_family = "darts"
    supernet_forms: Tuple[str, ...] = ("linear", "softmax", "selected")

    # -- config --------------------------------------------------------------------------
    def check_config(self, cfg: Any) -> None:
        for kind in CELL_KINDS:
            ops = _ops(cfg, kind)
            if len(set(ops)) != len(ops):
                raise ConfigError(f"model.darts.{kind}_ops lists an op twice: {list(ops)}")
            if not [o for o in ops if o != NONE]:
                raise ConfigError(f"the {kind} cell needs an op other than 'none' (model.darts.{kind}_ops)")
        if cfg.search.budget == "latency":
            raise ConfigError("the darts space has no latency model yet: use search.budget=flops, mac or none")
        if cfg.retrain.aux_weight > 0:
            side = self._aux_side(cfg)
            if side < 8:
                raise ConfigError(f"the auxiliary head needs a map of at least 8x8 after the second reduction "
                                  f"cell; at this input it is {side}x{side}: set retrain.aux_weight=0")
        self.check_output_stride(cfg, self.final_stride(cfg))

    @staticmethod
    def _aux_side(cfg: Any) -> int:
        from ...data import DATASETS  # noqa: PLC0415 - defers the datasets' imports (only an aux head asks)

        side = int(DATASETS.get(cfg.data.name).input_side(cfg))
        hw = stem_output_hw((side, side), cfg.model.darts.stem_stride)
        for _ in range(2):  # the head reads the second reduction cell's output (plan.aux_index)
            hw = cell_output_hw(hw, True)
        return hw[0]

    def final_stride(self, cfg: Any) -> int:
        """The stem's stride times the two reduction cells' 4."""
        return 4 * int(cfg.model.darts.stem_stride)

    def search_ops_overrides(self, ops: Sequence[str]) -> List[str]:
        """Config overrides that search the op table's ``ops`` in both cells."""
        bare = [o[len("darts_"):] if o.startswith("darts_") else o for o in ops]
        return [f"model.darts.normal_ops={bare}".replace(" ", ""), "model.darts.reduce_ops=[]"]

    # -- search --------------------------------------------------------------------------
    def build_supernet(self, cfg: Any, *, backend: str, head: Optional[HeadFactory],
                       weighting: str = "linear") -> DartsSuperNet:
        m, d = cfg.model, cfg.model.darts
        return DartsSuperNet(in_channels=m.in_channels, channels=d.channels, layers=d.layers, steps=d.steps,
                             stem_multiplier=d.stem_multiplier, stem_stride=d.stem_stride, normal_ops=_ops(cfg, "normal"),
                             reduce_ops=_ops(cfg, "reduce"), num_classes=m.num_classes,
                             affine=not cfg.train.fix_gamma, bn_eps=m.bn_eps, bn_momentum=m.bn_momentum,
                             backend=backend, head=head, weighting=weighting)

    def derive(self, cfg: Any, lambdas: Sequence[np.ndarray], meta: Dict[str, Any],
               rule: Optional[str] = None) -> DartsArchitecture:
        """The cells of ``lambdas`` under ``rule`` (default ``model.darts.derive``; a search method
        may name its own, as NASP and DARTS derive by DARTS' rule)."""
        d = cfg.model.darts
        rule = rule or d.derive
        cells = [derive_cell(lam, d.steps, _ops(cfg, kind), rule, kind) for kind, lam in zip(CELL_KINDS, lambdas)]
        return DartsArchitecture(cells[0], cells[1], int(cfg.model.in_channels), {**meta, "derive": rule})

    def cell_ops(self, cfg: Any) -> List[Tuple[str, ...]]:
        """The op set of each λ parameter (normal, reduce)."""
        return [_ops(cfg, kind) for kind in CELL_KINDS]

    def rule_masks(self, cfg: Any, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Per cell kind, the entries DARTS' rule keeps (flat booleans, edge-major)."""
        return [darts_rule_mask(lam, cfg.model.darts.steps, _ops(cfg, kind)) for kind, lam in zip(CELL_KINDS, lambdas)]

    def live_lambda(self, net: DartsSuperNet, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Non-zero, not ``none``, and not reading or feeding a dead node."""
        return [live_entries(np.asarray(lam) != 0, net.steps, net.ops[kind]).reshape(np.shape(lam))
                for kind, lam in zip(CELL_KINDS, lambdas)]

    def drop_pruned(self, net: DartsSuperNet, keep: Sequence[np.ndarray]) -> bool:
        return net.drop_pruned(keep)

    def search_report(self, net: DartsSuperNet, input_hw, lambdas) -> Dict[str, Any]:
        masks = [np.asarray(lam) != 0 for lam in lambdas]
        cost = net.cost(tuple(input_hw), masks)
        live = self.live_lambda(net, lambdas)
        return {"zero_lambda": int(sum((~m).sum() for m in masks)), "num_lambda": int(sum(m.size for m in masks)),
                "kept_entries": {kind: int(k.sum()) for kind, k in zip(CELL_KINDS, live)},
                "block_flops": [c.flops for c in cost["blocks"]], "block_params": [c.params for c in cost["blocks"]],
                "flops": cost["total"].flops, "params": cost["total"].params}

    def budget_blocks(self, net: DartsSuperNet, input_hw) -> List[BudgetBlock]:
        """One budget block per cell kind: the cost of all its cells under the kind's λ mask."""
        sizes = net.cell_inputs(tuple(input_hw))
        out = []
        for idx, kind in enumerate(CELL_KINDS):
            cells = [(c, hw) for c, hw in zip(net.search_cells(), sizes) if net.lambda_index(c) == idx]
            mac = sum(cell.entry_mac(hw1) for cell, (_, hw1) in cells)
            first, (_, hw1) = cells[0]
            out.append(BudgetBlock(idx, (first.plan.c_prev, hw1[0], hw1[1]),
                                   lambda mask, cells=cells: sum((c.cost(a, b, mask) for c, (a, b) in cells),
                                                                 Cost.zero()),
                                   mac))
        return out

    def lambda_deriver(self, net: DartsSuperNet) -> LambdaDeriver:
        raise ConfigError("the darts space has no latency model yet: use search.budget=flops, mac or none")

    def supernet_info(self, net: DartsSuperNet, cfg: Any) -> Dict[str, Any]:
        n_edges = len(edges(net.steps))
        return {"cells": net.layers, "edges_per_cell": n_edges,
                "lambda_per_cell_kind": {kind: n_edges * len(net.ops[kind]) for kind in CELL_KINDS},
                "num_lambda": sum(n_edges * len(net.ops[kind]) for kind in CELL_KINDS),
                "normal_ops": list(net.ops["normal"]), "reduce_ops": list(net.ops["reduce"])}

    # -- architectures -------------------------------------------------------------------
    def arch_from_dict(self, data: Dict[str, Any]) -> DartsArchitecture:
        return DartsArchitecture.from_dict(data)

    def check_arch(self, arch: Any, cfg: Any) -> None:
        if not isinstance(arch, DartsArchitecture):
            raise ConfigError(f"model.space={SPACE} retrains {SPACE} architecture files only")
        if arch.in_channels != cfg.model.in_channels:
            raise ConfigError(f"the architecture reads {arch.in_channels}-channel images but "
                              f"model.in_channels={cfg.model.in_channels} ({cfg.data.name})")

    def _eval_channels(self, cfg: Any, width_mult: float) -> int:
        return max(1, int(round(cfg.model.darts.eval_channels * width_mult)))

    def build_net(self, arch: DartsArchitecture, cfg: Any, *, width_mult: float, backend: str,
                  head: Optional[HeadFactory], aux_head: Optional[HeadFactory] = None) -> DartsNet:
        m, r, d = cfg.model, cfg.retrain, cfg.model.darts
        return DartsNet(arch, channels=self._eval_channels(cfg, width_mult), layers=d.eval_layers,
                        stem_multiplier=d.stem_multiplier, stem_stride=d.stem_stride, num_classes=m.num_classes, dropout=r.dropout,
                        drop_path=r.drop_path, aux_weight=r.aux_weight, bn_eps=m.bn_eps,
                        bn_momentum=m.bn_momentum, backend=backend, head=head, aux_head=aux_head)

    def net_cost(self, arch: DartsArchitecture, cfg: Any, width_mult: float, input_hw,
                 head_cost: Optional[HeadCost]) -> Dict[str, Any]:
        d = cfg.model.darts
        out = darts_cost(arch, self._eval_channels(cfg, width_mult), d.eval_layers, d.stem_multiplier,
                         tuple(input_hw), cfg.model.num_classes, stem_stride=d.stem_stride, head_cost=head_cost)
        out["width_mult"] = width_mult
        return out

    def info_overrides(self, arch: DartsArchitecture) -> List[str]:
        """DARTS' CIFAR-10 evaluation network (20 cells, C = 36, 32x32 images, 10 classes)."""
        return [f"model.space={SPACE}", f"model.in_channels={arch.in_channels}"] + _CIFAR_EVAL

    def arch_info(self, arch: DartsArchitecture) -> Dict[str, Any]:
        return {kind: {"entries": len(arch.cell(kind).entries()), "nodes": list(arch.cell(kind).concat),
                       "ops": [op for _, op, _ in arch.cell(kind).entries()]} for kind in CELL_KINDS}

    def planted_blocks(self, arch: DartsArchitecture) -> List[Tuple[List[str], int]]:
        """Per cell kind its entries' ops; each candidate op has one slot an edge."""
        return [([op for _, op, _ in arch.cell(kind).entries()], len(edges(arch.cell(kind).steps)))
                for kind in CELL_KINDS]

    def kept_rate(self, arch: DartsArchitecture) -> float:
        """Entries kept over the supernet's ``(edge, op)`` pairs of DARTS' seven non-none ops."""
        total = 2 * len(edges(arch.normal.steps)) * 7
        return len(arch.ops()) / float(total)

    def baseline(self, kind: str, cfg: Any, *, keep_rate: float, seed: int, like: Any = None) -> DartsArchitecture:
        """``random``: per cell, as many random ``(edge, op)`` entries as ``like`` keeps (default
        two per node, DARTS' size), each node reading at least one."""
        if kind not in self.baseline_kinds:
            raise ConfigError(f"the darts space builds the baselines {list(self.baseline_kinds)}, not {kind!r}")
        rng = np.random.RandomState(seed)
        steps = cfg.model.darts.steps
        cells = []
        for cell_kind in CELL_KINDS:
            ops = [o for o in _ops(cfg, cell_kind) if o != NONE]
            n = len(like.cell(cell_kind).entries()) if like is not None else 2 * steps
            n = max(n, steps)
            nodes: List[List[Tuple[str, int]]] = [[(ops[rng.randint(len(ops))], int(rng.randint(j)))]
                                                  for j in range(2, steps + 2)]
            pairs = [(j, i, o) for j in range(2, steps + 2) for i in range(j) for o in ops
                     if (o, i) not in nodes[j - 2]]
            for p in rng.permutation(len(pairs))[:n - steps]:
                j, i, o = pairs[int(p)]
                nodes[j - 2].append((o, i))
            cells.append(Cell(tuple(tuple(sorted(nd, key=lambda e: e[1])) for nd in nodes), tuple(range(2, steps + 2))))
        return DartsArchitecture(cells[0], cells[1], int(cfg.model.in_channels), {"baseline": kind, "seed": seed})
