"""The dense search space (TPAMI §3.1): S stages of M-level x N-op fully connected blocks.

* :mod:`~dso_nas.spaces.dense.graph` - the block graph, the flat λ layout, the dead-op rule;
* :mod:`~dso_nas.spaces.dense.block` - the search block (fused and per-edge λ sums);
* :mod:`~dso_nas.spaces.dense.supernet` - stem, stages of search blocks, reductions, head;
* :mod:`~dso_nas.spaces.dense.cell`, :mod:`~dso_nas.spaces.dense.arch` - derived cells and the
  architecture (its file form);
* :mod:`~dso_nas.spaces.dense.derived` - the retraining network rebuilt from the file;
* :mod:`~dso_nas.spaces.dense.baselines` - the Table-1 baselines.

Its cells are drawn (Fig. 6) by :mod:`dso_nas.plots.cells`, which reads them as they are.

:class:`DenseSpace` puts them behind the :class:`~dso_nas.spaces.base.SearchSpace` API.
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ConfigError
from ...models.common import reduction_plan, stem_stride
from ...ops import OPS, op_cost
from ...plots.cells import draw_architecture
from ..base import BudgetBlock, HeadCost, HeadFactory, LambdaDeriver, SearchSpace
from .arch import SPACE, SPACE_ALIASES, Architecture, Layout, derive_architecture
from .baselines import full_architecture, random_architecture
from .block import SearchBlock
from .cell import derive_block
from .derived import DerivedNet, arch_cost
from .graph import block_edges, live_edges, num_lambda, op_nodes, output_node
from .latency import DenseLatencyModel
from .supernet import SuperNet

__all__ = ["DenseSpace", "edge_op"]


def edge_op(edge, levels: int) -> Tuple[int, int]:
    """The operation whose MAC an edge's λ is weighted by (Eq. 18): its consumer, or its
    source for an edge into the block output."""
    src, dst = edge
    return src if dst == output_node(levels) else dst


class _CellDeriver(LambdaDeriver):
    """Masks → cells (hashable, cached by the budget) → the architecture."""

    def __init__(self, net: SuperNet):
        self.layout, self.scope = net.layout(), net.scope
        self.lambda_index = list(net.block_lambda_index())

    def parts(self, masks: Sequence[np.ndarray]) -> Tuple[Hashable, ...]:
        return tuple(derive_block(m, self.layout.levels, self.layout.ops) for m in masks)

    def toggled(self, parts, param: int, mask: np.ndarray):
        cells = list(parts)
        cells[param] = derive_block(mask, self.layout.levels, self.layout.ops)
        return tuple(cells)

    def architecture(self, parts) -> Architecture:
        cells = [parts[0]] if self.scope == "share" else [parts[i] for i in self.lambda_index]
        return Architecture.from_layout(self.layout, self.scope, cells)


class DenseSpace(SearchSpace):
    """The dense space behind the :class:`~dso_nas.spaces.base.SearchSpace` API."""

    name = SPACE
    aliases = SPACE_ALIASES
    baseline_kinds = ("random-share", "random-full", "full")

    # -- config --------------------------------------------------------------------------
    def check_config(self, cfg: Any) -> None:
        m = cfg.model
        if len(m.blocks) != m.stages or len(m.channels) != m.stages:
            raise ConfigError(
                f"model.blocks ({len(m.blocks)} entries) and model.channels ({len(m.channels)} entries) "
                f"must both have model.stages = {m.stages} entries")
        if m.levels < 1 or not m.ops:
            raise ConfigError("model.levels must be >= 1 and model.ops must name at least one op")
        if len(set(m.ops)) != len(m.ops):
            raise ConfigError(f"model.ops lists an op twice: {m.ops}")
        foreign = [o for o in m.ops if not self.accepts_op(OPS.get(o))]
        if foreign:
            raise ConfigError(f"model.ops has {foreign}, ops of another space's cells "
                              f"(family {OPS.get(foreign[0]).family!r}); the dense space does not search them")
        reduction_plan(m.stem, m.stages - 1, m.output_stride)  # ConfigError for a stride it cannot give

    def final_stride(self, cfg: Any) -> int:
        m = cfg.model
        return m.output_stride or stem_stride(m.stem) * 2 ** (m.stages - 1)

    @staticmethod
    def layout(cfg: Any) -> Layout:
        """The network layout of ``cfg.model``."""
        return Layout.from_config(cfg.model)

    # -- search --------------------------------------------------------------------------
    def build_supernet(self, cfg: Any, *, backend: str, head: Optional[HeadFactory],
                       weighting: str = "linear") -> SuperNet:  # linear only (supernet_forms)
        m = cfg.model
        return SuperNet(stem=m.stem, in_channels=m.in_channels, stem_channels=m.stem_channels,
                        channels=m.channels, blocks=m.blocks, levels=m.levels, ops=m.ops, scope=m.scope,
                        num_classes=m.num_classes, aggregation=m.aggregation, affine=not cfg.train.fix_gamma,
                        bn_eps=m.bn_eps, bn_momentum=m.bn_momentum, backend=backend, head=head,
                        output_stride=m.output_stride, final_bn=m.final_bn)

    def derive(self, cfg: Any, lambdas: Sequence[np.ndarray], meta: Dict[str, Any]) -> Architecture:
        return derive_architecture(lambdas, scope=cfg.model.scope, layout=self.layout(cfg), meta=meta)

    def search_report(self, net: SuperNet, input_hw, lambdas) -> Dict[str, Any]:
        masks = [lam != 0 for lam in lambdas]
        cost = net.cost(tuple(input_hw), masks)
        return {"zero_lambda": int(sum((~m).sum() for m in masks)),
                "num_lambda": int(sum(m.size for m in masks)),
                "block_flops": [c.flops for c in cost["blocks"]],
                "block_params": [c.params for c in cost["blocks"]],
                "flops": cost["total"].flops, "params": cost["total"].params}

    def budget_blocks(self, net: SuperNet, input_hw) -> List[BudgetBlock]:
        blocks: List[SearchBlock] = net.search_blocks()
        index = net.block_lambda_index()
        shapes = [tuple(int(v) for v in s) for s in net.block_shapes(tuple(input_hw))]
        out = []
        for blk, param, (c, h, w) in zip(blocks, index, shapes):
            op_mac = {node: op_cost(blk.ops[node[1]], c, h, w, 1, blk.affine).mac
                      for node in op_nodes(blk.levels, blk.n_ops)}
            entry_mac = np.array([op_mac[edge_op(e, blk.levels)] for e in block_edges(blk.levels, blk.n_ops)],
                                 dtype=np.float64)
            out.append(BudgetBlock(int(param), (c, h, w),
                                   lambda mask, blk=blk, h=h, w=w: blk.cost(h, w, mask), entry_mac))
        return out

    def live_lambda(self, net: SuperNet, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Non-zero λ on edges between live ops (:func:`~dso_nas.spaces.dense.graph.live_edges`,
        the derivation's own rule): an edge into or out of a dead op is pruned with it."""
        levels, n_ops = net.levels, len(net.ops)
        edges = block_edges(levels, n_ops)
        out = []
        for lam in lambdas:
            live = set(live_edges(np.asarray(lam) != 0, levels, n_ops))
            out.append(np.array([edge in live for edge in edges], dtype=bool).reshape(np.shape(lam)))
        return out

    def drop_pruned(self, net: SuperNet, keep: Sequence[np.ndarray]) -> bool:
        """Each search block computes only its live ops and kept edges
        (:meth:`~dso_nas.spaces.dense.block.SearchBlock.drop_pruned`)."""
        index = net.block_lambda_index()
        changed = [block.drop_pruned(keep[i]) for block, i in zip(net.search_blocks(), index)]
        return any(changed)

    def lambda_deriver(self, net: SuperNet) -> LambdaDeriver:
        return _CellDeriver(net)

    def latency_model(self, net: SuperNet, table: Any, *, build_net, input_shape, backend: str):
        shapes = net.block_shapes(tuple(input_shape[2:]))
        return DenseLatencyModel(table, net.layout(), net.scope, shapes, build_net, input_shape, backend)

    def supernet_info(self, net: SuperNet, cfg: Any) -> Dict[str, Any]:
        return {"scope": cfg.model.scope, "lambda_per_block": num_lambda(cfg.model.levels, len(cfg.model.ops)),
                "num_lambda": int(sum(int(np.prod(p.shape)) for p in net.lambda_params())),
                "blocks": len(net.search_blocks()), "stages": cfg.model.stages, "channels": list(cfg.model.channels)}

    # -- architectures -------------------------------------------------------------------
    def arch_from_dict(self, data: Dict[str, Any]) -> Architecture:
        return Architecture.from_dict(data)

    def check_arch(self, arch: Architecture, cfg: Any) -> None:
        if arch.in_channels != cfg.model.in_channels:
            raise ConfigError(f"the architecture reads {arch.in_channels}-channel images but "
                              f"model.in_channels={cfg.model.in_channels} ({cfg.data.name})")

    def on_layout(self, arch: Architecture, cfg: Any) -> Architecture:
        layout = self.layout(cfg)
        if arch.layout == layout:
            return arch
        if arch.levels != layout.levels or tuple(arch.ops) != layout.ops:
            raise ConfigError(f"the architecture's cells have M={arch.levels} levels of ops {list(arch.ops)}; "
                              f"model.levels={layout.levels} and model.ops={list(layout.ops)} must match them")
        if arch.scope == "full" and arch.blocks != layout.blocks:
            raise ConfigError(f"a full-scope architecture has one cell per block of its own layout "
                              f"(blocks {list(arch.blocks)}) and cannot be laid on model.blocks={list(layout.blocks)}: "
                              f"transfer a share-scope architecture, or use retrain.layout=arch")
        source = {k: arch.to_dict()[k] for k in ("stem", "in_channels", "stem_channels", "channels", "blocks")}
        return Architecture.from_layout(layout, arch.scope, arch.cells, meta={**arch.meta, "transferred_from": source})

    def build_net(self, arch: Architecture, cfg: Any, *, width_mult: float, backend: str,
                  head: Optional[HeadFactory], aux_head: Optional[HeadFactory] = None) -> DerivedNet:
        r, m = cfg.retrain, cfg.model
        return DerivedNet(arch, width_mult=width_mult, num_classes=m.num_classes, dropout=r.dropout,
                          drop_path=r.drop_path, aux_weight=r.aux_weight, aux_stage=r.aux_stage or None,
                          first_shortcut=m.first_shortcut, affine=True, bn_eps=m.bn_eps,
                          bn_momentum=m.bn_momentum, backend=backend, width_divisor=r.width_divisor, head=head,
                          aux_head=aux_head, output_stride=m.output_stride, final_bn=m.final_bn)

    def net_cost(self, arch: Architecture, cfg: Any, width_mult: float, input_hw,
                 head_cost: Optional[HeadCost]) -> Dict[str, Any]:
        return arch_cost(arch, width_mult, tuple(input_hw), cfg.model.num_classes,
                         first_shortcut=cfg.model.first_shortcut, width_divisor=cfg.retrain.width_divisor,
                         head_cost=head_cost, output_stride=cfg.model.output_stride,
                         final_bn=cfg.model.final_bn)

    def arch_info(self, arch: Architecture) -> Dict[str, Any]:
        return {"scope": arch.scope, "kept_ops": [len(c.ops) for c in arch.block_cells()]}

    def draw(self, arch: Architecture, folder: str) -> List[str]:
        return draw_architecture(arch, folder)

    def baseline(self, kind: str, cfg: Any, *, keep_rate: float, seed: int,
                 like: Optional[Architecture] = None) -> Architecture:
        if kind not in self.baseline_kinds:
            raise ConfigError(f"unknown baseline {kind!r}; valid: {', '.join(self.baseline_kinds)}")
        if kind == "full":
            return full_architecture(self.layout(cfg))
        scope, counts = kind.split("-")[1], None
        if like is not None:  # exactly as many edges as the searched cells keep
            kept = [int(c.mask(like.levels, len(like.ops)).sum()) for c in like.block_cells()]
            mean = int(round(sum(kept) / len(kept)))  # a scope the searched one lacks: its mean count
            counts = kept if scope == like.scope == "full" else [mean] * (1 if scope == "share" else len(kept))
            keep_rate = self.kept_rate(like)
        return random_architecture(self.layout(cfg), scope=scope, keep_rate=keep_rate, seed=seed, counts=counts)

    def planted_blocks(self, arch: Architecture) -> List[Tuple[List[str], int]]:
        """Per block cell its kept ops; each candidate op has one slot a level."""
        return [([k.op for k in cell.ops], arch.levels) for cell in arch.block_cells()]

    def kept_rate(self, arch: Architecture) -> float:
        kept = sum(int(cell.mask(arch.levels, len(arch.ops)).sum()) for cell in arch.cells)
        return kept / float(num_lambda(arch.levels, len(arch.ops)) * len(arch.cells))
