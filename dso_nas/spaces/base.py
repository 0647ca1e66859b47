"""What a search space provides: the API the pipeline, the budgets and the tools call.

A space owns its supernet, its derivation rule, its architecture file form, its derived
network, the analytic cost of both, and its drawings and baselines. The rest of the package
sees only this API, so a new space (the mobile one) is one package plus one registration
line in :mod:`dso_nas.spaces`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
from mxnet.gluon import HybridBlock

from ..errors import ConfigError
from ..models.heads import HeadCost, HeadFactory
from ..ops import Cost

__all__ = ["SearchSpace", "BudgetBlock", "LambdaDeriver", "HeadFactory", "HeadCost", "check_plain_arch"]


@dataclass(frozen=True)
class BudgetBlock:
    """One searched block as the budgets (Eqs. 17-18) see it, whatever the space.

    Attributes
    ----------
    param : int
        Index of its λ parameter in ``net.lambda_params()``.
    shape : (int, int, int)
        ``(C, H, W)`` of its input.
    cost : callable
        ``mask -> Cost`` of what a flat boolean λ mask keeps of the block.
    entry_mac : numpy.ndarray
        Per λ entry, the MAC of the operation whose survival the entry decides (Eq. 18).
    """

    param: int
    shape: Tuple[int, int, int]
    cost: Callable[[np.ndarray], Cost]
    entry_mac: np.ndarray


class LambdaDeriver:
    """Turns λ masks into derived architectures for the latency budget (Eq. 19).

    :meth:`parts` gives one hashable part per λ parameter (the derived cell), so the budget
    caches measurements by what the masks derive to; :meth:`architecture` assembles them.
    """

    def parts(self, masks: Sequence[np.ndarray]) -> Tuple[Hashable, ...]:
        """One hashable derived part per λ parameter."""
        raise NotImplementedError

    def toggled(self, parts: Tuple[Hashable, ...], param: int, mask: np.ndarray) -> Tuple[Hashable, ...]:
        """``parts`` with parameter ``param``'s part re-derived from ``mask``."""
        raise NotImplementedError

    def architecture(self, parts: Tuple[Hashable, ...]) -> Any:
        """The architecture the parts make up."""
        raise NotImplementedError


#: ``retrain.layout``: ``"arch"`` retrains the architecture file's own layout, ``"config"`` lays
#: its cells on ``model.*`` (:meth:`SearchSpace.on_layout`; transfer, TPAMI Table 2 †).
LAYOUTS = ("arch", "config")


class SearchSpace:
    """Base of the registered search spaces (:data:`dso_nas.spaces.SPACES`)."""

    #: Registered name (``model.space``).
    name = ""
    #: Table-1 baseline kinds :meth:`baseline` builds.
    baseline_kinds: Tuple[str, ...] = ()
    #: False for a hand-designed reference: only the architecture methods work.
    searchable: bool = True
    #: The op family (:attr:`~dso_nas.ops.OpSpec.family`) ``model.ops`` must come from; ``None``: any.
    op_family: Optional[str] = None
    #: Supernet forms a search method may ask for (:mod:`dso_nas.search.methods`): ``linear``
    #: (ops weighed by λ), ``softmax`` (by the softmax of an edge's entries), ``selected`` (a
    #: twin network computing only selected entries, ``twin()`` and ``select(masks)``).
    supernet_forms: Tuple[str, ...] = ("linear",)

    # -- config --------------------------------------------------------------------------
    def check_config(self, cfg: Any) -> None:
        """Space-specific cross-key checks of a resolved config (``ConfigError``)."""

    def accepts_op(self, spec: Any) -> bool:
        """Whether the space searches the op table's entry ``spec``: one of its family where it
        has one, else any op that is not reserved to another space (``OpSpec.exclusive``)."""
        return spec.family == self.op_family if self.op_family else not getattr(spec, "exclusive", False)

    def search_ops_overrides(self, ops: Sequence[str]) -> List[str]:
        """``KEY=VALUE`` settings that make the space search the op table's entries ``ops``."""
        return [f"model.ops={list(ops)}".replace(" ", "")]

    # -- search --------------------------------------------------------------------------
    def build_supernet(self, cfg: Any, *, backend: str, head: Optional[HeadFactory],
                       weighting: str = "linear") -> HybridBlock:
        """The supernet of ``cfg`` in op form ``backend``, with the task's head.

        It has ``lambda_params()``, ``weight_params()``, ``cost(input_hw, masks)`` and
        ``sequential_layers()`` (for mirror mode). ``weighting`` (one of
        :attr:`supernet_forms`) is how the architecture parameters weigh the ops: ``linear``
        (λ itself) or ``softmax`` (per edge, DARTS).
        """
        raise NotImplementedError

    def derive(self, cfg: Any, lambdas: Sequence[np.ndarray], meta: Dict[str, Any]) -> Any:
        """The architecture the λ iterates leave (zero λ removed)."""
        raise NotImplementedError

    def search_done(self, cfg: Any, lambdas: Sequence[np.ndarray]) -> bool:
        """Whether the λ reached the space's own end of search (checked after every epoch;
        ``search.epochs`` stays the cap). Default: never."""
        return False

    def live_lambda(self, net: HybridBlock, lambdas: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Per λ parameter, the entries the derivation would keep: non-zero and, where the
        space has such a rule, on an op that is still alive. A prune fixes the others at
        zero. Default: the non-zero entries."""
        return [np.asarray(lam) != 0 for lam in lambdas]

    def drop_pruned(self, net: HybridBlock, keep: Sequence[np.ndarray]) -> bool:
        """Leave out of the supernet's computation, for good, what the λ outside ``keep`` (per λ
        parameter, ``True`` = not pruned) no longer reach; whether anything changed (the caller
        then hybridizes again). Default: nothing is left out."""
        return False

    def protected_lambda(self, net: HybridBlock) -> Optional[Callable[[Sequence[np.ndarray]], List[np.ndarray]]]:
        """``λ -> per-parameter bool arrays`` of λ entries the budgets must not penalise
        (their γ multiplier is set to 0), or ``None`` (the default: none)."""
        return None

    def search_report(self, net: HybridBlock, input_hw: Tuple[int, int],
                      lambdas: Sequence[np.ndarray]) -> Dict[str, Any]:
        """Per-epoch figures of the search (zero λ, kept FLOPs per block, ...), JSON-able."""
        raise NotImplementedError

    def budget_blocks(self, net: HybridBlock, input_hw: Tuple[int, int]) -> List[BudgetBlock]:
        """The searched blocks with their λ index, shapes and cost functions."""
        raise NotImplementedError

    def lambda_deriver(self, net: HybridBlock) -> LambdaDeriver:
        """Derivation of λ masks to architectures, for the latency budget."""
        raise NotImplementedError

    def latency_model(self, net: HybridBlock, table: Any, *, build_net: Callable[[Any], HybridBlock],
                      input_shape: Tuple[int, ...], backend: str) -> Callable[[Any], float]:
        """``architecture -> predicted batch-1 latency`` from a lookup table (Eq. 19), with a
        ``build(show_progress)`` method that measures what the table lacks."""
        raise NotImplementedError

    def supernet_info(self, net: HybridBlock, cfg: Any) -> Dict[str, Any]:
        """``dso-nas info`` figures of the supernet beyond its cost."""
        raise NotImplementedError

    # -- architectures -------------------------------------------------------------------
    def arch_from_dict(self, data: Dict[str, Any]) -> Any:
        """Validate and build an architecture from its file form (``ArchitectureError``)."""
        raise NotImplementedError

    def check_arch(self, arch: Any, cfg: Any) -> None:
        """Refuse an architecture that does not fit ``cfg`` (``ConfigError``)."""

    def on_layout(self, arch: Any, cfg: Any) -> Any:
        """A new architecture with ``arch``'s cells on ``cfg.model``'s layout (``retrain.layout=
        config``: a block searched on one dataset retrained on another, TPAMI Table 2 †);
        ``ConfigError`` where the space cannot map it."""
        raise ConfigError(f"the {self.name} space cannot lay an architecture on another layout; "
                          f"use retrain.layout=arch")

    def build_net(self, arch: Any, cfg: Any, *, width_mult: float, backend: str,
                  head: Optional[HeadFactory], aux_head: Optional[HeadFactory] = None) -> HybridBlock:
        """The retraining network of ``arch`` under ``cfg``'s retraining options, with the task's
        head (and auxiliary head, where the space has one)."""
        raise NotImplementedError

    def final_stride(self, cfg: Any) -> int:
        """Output stride of the last feature map (the one the task's head reads) under ``cfg``:
        ``model.output_stride`` where the space honours it, else its own."""
        raise NotImplementedError

    def check_output_stride(self, cfg: Any, native: int) -> None:
        """``ConfigError`` unless ``model.output_stride`` is 0 or ``native`` (a space without a
        dilated form)."""
        if cfg.model.output_stride not in (0, native):
            raise ConfigError(f"the {self.name} space has no dilated form: its output stride is {native}, "
                              f"so model.output_stride must be 0 or {native}")

    def net_cost(self, arch: Any, cfg: Any, width_mult: float, input_hw: Tuple[int, int],
                 head_cost: Optional[HeadCost]) -> Dict[str, Any]:
        """Analytic cost of :meth:`build_net`'s network: ``total``, ``blocks``, ``widths``..."""
        raise NotImplementedError

    def info_overrides(self, arch: Any) -> List[str]:
        """``KEY=VALUE`` settings ``dso-nas info --arch`` uses when no ``--config`` is given (the
        architecture's own dataset and classes); none by default."""
        return []

    def arch_info(self, arch: Any) -> Dict[str, Any]:
        """``dso-nas info --arch`` figures beyond the cost (kept ops...)."""
        return {}

    def draw(self, arch: Any, folder: str) -> List[str]:
        """Drawings of the architecture's blocks; the written paths."""
        return []

    def baseline(self, kind: str, cfg: Any, *, keep_rate: float, seed: int, like: Any = None) -> Any:
        """A Table-1 baseline architecture of ``kind`` (one of :attr:`baseline_kinds`); given a
        searched architecture ``like``, a random one keeps as many connections as it does."""
        raise NotImplementedError

    def planted_blocks(self, arch: Any) -> List[Tuple[List[str], int]]:
        """Per searched block of ``arch``: the op names it kept, and how many slots each candidate
        op had in it (the planted check, :mod:`dso_nas.study.planted`)."""
        raise NotImplementedError(f"the {self.name} space has no planted check")

    def kept_rate(self, arch: Any) -> float:
        """Fraction of the supernet's λ connections an architecture keeps."""
        raise NotImplementedError


def check_plain_arch(space: str, kind: type, arch: Any, cfg: Any) -> None:
    """The retraining checks of a space without auxiliary head or drop path: the file is of
    ``kind``, reads ``model.in_channels`` channels, and ``cfg`` asks for neither (``ConfigError``)."""
    if not isinstance(arch, kind):
        raise ConfigError(f"model.space={space} retrains {space} architecture files only")
    if arch.in_channels != cfg.model.in_channels:
        raise ConfigError(f"the architecture reads {arch.in_channels}-channel images but "
                          f"model.in_channels={cfg.model.in_channels} ({cfg.data.name})")
    if cfg.retrain.aux_weight > 0 or cfg.retrain.drop_path > 0:
        raise ConfigError(f"the {space} space has no auxiliary head and no drop path: set retrain.aux_weight=0 "
                          f"and retrain.drop_path=0")
