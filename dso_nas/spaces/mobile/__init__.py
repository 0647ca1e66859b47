"""The mobile search space (TPAMI §3.1 "Mobile Setting", Eqs. 3-4, Fig. 3): ProxylessNAS's backbone.

* :mod:`~dso_nas.spaces.mobile.arch` - the macro (``model.mobile.*``) and the architecture file;
* :mod:`~dso_nas.spaces.mobile.net` - stem, tail, the derived network and its cost;
* :mod:`~dso_nas.spaces.mobile.supernet` - the mixed blocks with one λ per op;
* :mod:`~dso_nas.spaces.mobile.latency` - the lookup-table latency model (Eq. 19).

Derivation keeps, per block, the op with the largest λ among the non-zero ones (one op per
block, §4.3); a block whose λ are all zero is skipped, which only a block with its residual
can be. The search stops once every block keeps at most one op (``model.mobile.one_op``),
``search.epochs`` being the cap.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ConfigError
from ...ops import OPS
from ..base import BudgetBlock, HeadCost, HeadFactory, LambdaDeriver, SearchSpace, check_plain_arch
from .arch import SKIP, SPACE, Macro, MobileArchitecture
from .latency import MobileLatencyModel
from .net import MobileNet, mobile_cost
from .supernet import MobileSuperNet

__all__ = ["MobileSpace", "MobileArchitecture", "MobileNet", "derive_ops", "one_op_per_block"]

LOG = logging.getLogger("dso_nas")
#: The six searchable ops of §3.1 (kernel 3, 5, 7 x expansion 3, 6).
_MBCONV_OPS = tuple(f"mbconv_{k}x{k}_e{e}" for k in (3, 5, 7) for e in (3, 6))


def derive_ops(lambdas: Sequence[np.ndarray], ops: Sequence[str], residual: Sequence[bool]) -> List[str]:
    """One op per block: the largest non-zero λ's op; ``"skip"`` where every λ is zero and the
    block has its residual. A block without residual whose λ all vanished in one step (its
    last live op is spared the penalty, :meth:`MobileSuperNet.protected`, so only two or more
    ops dying together, or the loss gradient, can do that) keeps the first op, with a warning."""
    out = []
    for i, (lam, res) in enumerate(zip(lambdas, residual)):
        lam = np.asarray(lam, dtype=np.float64).reshape(-1)
        if np.any(lam != 0):
            out.append(ops[int(np.argmax(np.abs(lam)))])
        elif res:
            out.append(SKIP)
        else:
            LOG.warning("block %d has no residual and all its λ are zero: it keeps %s", i, ops[0])
            out.append(ops[0])
    return out


def one_op_per_block(lambdas: Sequence[np.ndarray]) -> bool:
    """The stopping rule of §4.3: at most one non-zero λ in every block."""
    return all(int(np.count_nonzero(lam)) <= 1 for lam in lambdas)


class _OpDeriver(LambdaDeriver):
    """Masks → per-block op (hashable) → the architecture."""

    def __init__(self, net: MobileSuperNet):
        self.macro, self.ops = net.macro, net.op_names
        self.residual = [b.plan.residual for b in net.search_blocks()]

    def _op(self, mask: np.ndarray, residual: bool) -> str:
        # under a mask the λ values are unknown: the first kept op stands for the block
        kept = np.flatnonzero(np.asarray(mask).reshape(-1))
        return self.ops[int(kept[0])] if kept.size else (SKIP if residual else self.ops[0])

    def parts(self, masks: Sequence[np.ndarray]) -> Tuple[Hashable, ...]:
        return tuple(self._op_set(m, r) for m, r in zip(masks, self.residual))

    def _op_set(self, mask: np.ndarray, residual: bool) -> Tuple[str, ...]:
        kept = tuple(self.ops[i] for i in np.flatnonzero(np.asarray(mask).reshape(-1)))
        return kept or ((SKIP,) if residual else (self.ops[0],))

    def toggled(self, parts, param: int, mask: np.ndarray):
        out = list(parts)
        out[param] = self._op_set(mask, self.residual[param])
        return tuple(out)

    def architecture(self, parts) -> Dict[str, Any]:
        """The kept ops of every block (a block of several ops is the supernet's block)."""
        return {"macro": self.macro, "blocks": tuple(parts)}


class MobileSpace(SearchSpace):
    """The mobile space behind the :class:`~dso_nas.spaces.base.SearchSpace` API."""

    name = SPACE
    aliases: Tuple[str, ...] = ("proxyless",)
    baseline_kinds: Tuple[str, ...] = ()
    op_family = "mbconv"

    # -- config --------------------------------------------------------------------------
    def check_config(self, cfg: Any) -> None:
        m = cfg.model.mobile
        if not (len(m.widths) == len(m.depths) == len(m.strides)) or not m.widths:
            raise ConfigError(f"model.mobile.widths, depths and strides must have the same, non-zero number of "
                              f"entries (got {len(m.widths)}, {len(m.depths)}, {len(m.strides)})")
        if any(s not in (1, 2) for s in m.strides):
            raise ConfigError(f"model.mobile.strides must be 1 or 2, got {list(m.strides)}")
        bad = [o for o in cfg.model.ops if OPS.get(o).family != self.op_family]
        if bad:
            mbconv = [n for n in OPS.choices() if OPS.get(n).family == self.op_family]
            raise ConfigError(f"model.space=mobile searches MBConv ops; model.ops has {bad}; valid: {mbconv}")
        if cfg.search.budget == "latency" and cfg.latency.model != "table":
            raise ConfigError("the mobile space's latency budget reads the lookup table: set latency.model=table")
        if len(set(cfg.model.ops)) != len(cfg.model.ops):
            raise ConfigError(f"model.ops lists an op twice: {list(cfg.model.ops)}")
        self.check_output_stride(cfg, self.final_stride(cfg))

    def final_stride(self, cfg: Any) -> int:
        """The first conv's 2 times every stage's stride (no dilated form)."""
        stride = 2
        for s in cfg.model.mobile.strides:
            stride *= int(s)
        return stride

    # -- search --------------------------------------------------------------------------
    def build_supernet(self, cfg: Any, *, backend: str, head: Optional[HeadFactory],
                       weighting: str = "linear") -> MobileSuperNet:  # linear only (supernet_forms)
        m = cfg.model
        return MobileSuperNet(Macro.from_config(m), m.ops, m.num_classes, affine=not cfg.train.fix_gamma,
                              bn_eps=m.bn_eps, bn_momentum=m.bn_momentum, backend=backend, head=head)

    def derive(self, cfg: Any, lambdas: Sequence[np.ndarray], meta: Dict[str, Any]) -> MobileArchitecture:
        macro = Macro.from_config(cfg.model)
        ops = derive_ops(lambdas, list(cfg.model.ops), [p.residual for p in macro.plan()])
        several = sum(int(np.count_nonzero(lam) > 1) for lam in lambdas)
        return MobileArchitecture.from_macro(macro, ops, {**meta, "blocks_with_several_ops": several})

    def search_done(self, cfg: Any, lambdas: Sequence[np.ndarray]) -> bool:
        return bool(cfg.model.mobile.one_op) and one_op_per_block(lambdas)

    def drop_pruned(self, net: MobileSuperNet, keep: Sequence[np.ndarray]) -> bool:
        """Each mixed block stops computing its pruned ops (:meth:`MixedBlock.drop_pruned`)."""
        return any([block.drop_pruned(k) for block, k in zip(net.search_blocks(), keep)])

    def protected_lambda(self, net: MobileSuperNet) -> Callable[[Sequence[np.ndarray]], List[np.ndarray]]:
        return net.protected

    def search_report(self, net: MobileSuperNet, input_hw, lambdas) -> Dict[str, Any]:
        masks = [lam != 0 for lam in lambdas]
        cost = net.cost(tuple(input_hw), masks)
        return {"zero_lambda": int(sum((~m).sum() for m in masks)), "num_lambda": int(sum(m.size for m in masks)),
                "ops_per_block": [int(m.sum()) for m in masks],
                "block_flops": [c.flops for c in cost["blocks"]], "block_params": [c.params for c in cost["blocks"]],
                "flops": cost["total"].flops, "params": cost["total"].params}

    def budget_blocks(self, net: MobileSuperNet, input_hw) -> List[BudgetBlock]:
        out = []
        for i, (blk, (c, h, w)) in enumerate(zip(net.search_blocks(), net.block_shapes(tuple(input_hw)))):
            entry_mac = np.array([OPS.get(n).cost(c, h, w, blk.plan.stride, blk.affine, c_out=blk.plan.c_out).mac
                                  for n in blk.op_names], dtype=np.float64)
            out.append(BudgetBlock(i, (c, h, w), lambda mask, blk=blk, h=h, w=w: blk.cost(h, w, mask), entry_mac))
        return out

    def lambda_deriver(self, net: MobileSuperNet) -> LambdaDeriver:
        return _OpDeriver(net)

    def latency_model(self, net: MobileSuperNet, table: Any, *, build_net, input_shape, backend: str):
        return MobileLatencyModel(table, net.macro, net.op_names, tuple(input_shape), build_net, backend)

    def arch_latency_model(self, arch: MobileArchitecture, table: Any, *, build_net, input_shape, backend: str):
        """The latency model on ``arch``'s own macro with its ops as the candidates (any derived
        or reference net of the space, Table 3)."""
        ops = list(dict.fromkeys(op for op in arch.ops() if op != SKIP))
        return MobileLatencyModel(table, arch.macro, ops, tuple(input_shape), build_net, backend)

    def supernet_info(self, net: MobileSuperNet, cfg: Any) -> Dict[str, Any]:
        return {"lambda_per_block": len(cfg.model.ops), "num_lambda": len(cfg.model.ops) * len(net.search_blocks()),
                "blocks": len(net.search_blocks()), "residual_blocks": sum(b.plan.residual for b in net.search_blocks()),
                "widths": list(cfg.model.mobile.widths), "depths": list(cfg.model.mobile.depths)}

    # -- architectures -------------------------------------------------------------------
    def arch_from_dict(self, data: Dict[str, Any]) -> MobileArchitecture:
        return MobileArchitecture.from_dict(data)

    def check_arch(self, arch: Any, cfg: Any) -> None:
        check_plain_arch(SPACE, MobileArchitecture, arch, cfg)

    def build_net(self, arch: MobileArchitecture, cfg: Any, *, width_mult: float, backend: str,
                  head: Optional[HeadFactory], aux_head: Optional[HeadFactory] = None) -> MobileNet:
        m = cfg.model
        return MobileNet(arch, width_mult=width_mult, width_divisor=cfg.retrain.width_divisor,
                         num_classes=m.num_classes, dropout=cfg.retrain.dropout, bn_eps=m.bn_eps,
                         bn_momentum=m.bn_momentum, backend=backend, head=head)

    def net_cost(self, arch: MobileArchitecture, cfg: Any, width_mult: float, input_hw,
                 head_cost: Optional[HeadCost]) -> Dict[str, Any]:
        return mobile_cost(arch, width_mult, tuple(input_hw), cfg.model.num_classes,
                           width_divisor=cfg.retrain.width_divisor, head_cost=head_cost)

    def info_overrides(self, arch: MobileArchitecture) -> List[str]:
        """An ImageNet model at 224x224, width 1, with the classes its file names (default 1000)."""
        return [f"model.space={SPACE}", "data.name=imagenet", "data.image_size=224", "latency.input_size=224",
                f"model.in_channels={arch.in_channels}", f"model.num_classes={int(arch.meta.get('num_classes', 1000))}",
                "retrain.target_params=0", "retrain.target_flops=0", "retrain.width_mult=1.0",
                "retrain.aux_weight=0", "retrain.drop_path=0", f"model.ops={list(_MBCONV_OPS)}".replace(" ", "")]

    def arch_info(self, arch: MobileArchitecture) -> Dict[str, Any]:
        ops = arch.ops()
        return {"ops": ops, "skipped": sum(o == SKIP for o in ops), "stages": len(arch.blocks)}

    def kept_rate(self, arch: MobileArchitecture) -> float:
        ops = arch.ops()
        return sum(o != SKIP for o in ops) / float(len(ops))
