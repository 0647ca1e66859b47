"""The DSO-NAS supernet: stem, S stages of search blocks with reductions between, classifier.

TPAMI §3.1 / Fig. 2: a network of S stages with ``blocks[s]`` search blocks each; a
reduction block (halve the resolution, ``channels[s] -> channels[s+1]``) ends every stage
but the last. Layouts of the paper (all through the constructor arguments):

* CIFAR-10: ``stem="cifar"``, ``stem_channels=48``, ``channels=(48, 96, 192)``,
  ``blocks=(8, 8, 8)``, ``levels=4``, the four ops of the paper.
* ImageNet: ``stem="imagenet"`` (``3 x 3`` s2 to 14, ``3 x 3`` s2 to 28),
  ``stem_channels=28``, ``channels=(28, 56, 112, 224)``, ``blocks=(2, 2, 13, 6)``.

When ``stem_channels != channels[0]`` a ``1 x 1`` ConvBNReLU (``adapter``) is inserted
after the stem; with the paper's layouts it is not. With ``final_bn`` the last stage's output
passes a BatchNorm + ReLU (learnable γ) before the head, as in every symbol of the authors'
release (``final_bn``, ``final_relu``).

Search scopes: ``"share"`` - one λ Parameter (``<prefix>shared_lambda``) used by every
search block of every stage; ``"full"`` - one λ per block (``<prefix>stage<s>_block<b>_lambda``).
Every λ name ends in ``lambda`` and nothing else does, so ``collect_params('.*lambda$')``
selects exactly the architecture parameters.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import HybridBlock, nn

from dso_nas.errors import ConfigError
from dso_nas.models.common import ConvBNReLU, ReductionBlock, Stem, reduction_plan
from dso_nas.models.heads import Classifier, HeadFactory
from dso_nas.ops import REFERENCE, BNReLU, Cost, bn_cost, check_backend
from dso_nas.spaces.dense.arch import Layout
from dso_nas.spaces.dense.block import AGGREGATIONS, SearchBlock
from dso_nas.spaces.dense.graph import num_lambda

__all__ = ["SCOPES", "LAMBDA_PATTERN", "SuperNet"]

SCOPES = ("share", "full")

#: Regular expression that selects every λ Parameter (and nothing else) by name.
LAMBDA_PATTERN = ".*lambda$"


class SuperNet(HybridBlock):
    """The over-parameterized network searched by DSO-NAS.

    Parameters
    ----------
    stem : {"cifar", "imagenet"}
        Stem layout (:class:`dso_nas.models.common.Stem`).
    in_channels : int
        Image channels.
    stem_channels : int
        Output width of the stem.
    channels : sequence of int
        Width of each stage.
    blocks : sequence of int
        Search blocks per stage (same length as ``channels``).
    levels : int
        M, levels per search block.
    ops : sequence of str
        The N candidate operations.
    scope : {"share", "full"}
        One λ for all blocks, or one λ per block.
    num_classes : int
        Classifier outputs.
    aggregation : {"fused", "per_edge"}
        λ-weighted sum formulation of the search blocks (same numbers).
    affine : bool
        Learnable BN γ everywhere (the search phase uses ``False``: γ fixed to 1).
    bn_eps, bn_momentum : float
        BatchNorm settings.
    dropout : float
        Dropout before the classifier.
    backend : {"onednn", "reference"}
        Op form of every layer (:mod:`dso_nas.ops.backends`).
    head : callable, optional
        ``(in_channels, prefix) -> HybridBlock`` building the head on the last feature map
        (the task's; default: :class:`~dso_nas.models.heads.Classifier` with ``num_classes``).
    output_stride : int
        0: every reduction strided; else the reductions past this stride keep the resolution
        and the blocks after them dilate (:func:`~dso_nas.models.common.reduction_plan`;
        DeepLabv3's 16 for segmentation, TPAMI §4.4).
    final_bn : bool
        BatchNorm (learnable γ, whatever ``affine`` says) + ReLU on the last stage's output.
    """

    def __init__(self, *, stem: str, in_channels: int, stem_channels: int,
                 channels: Sequence[int], blocks: Sequence[int], levels: int,
                 ops: Sequence[str], scope: str, num_classes: int, aggregation: str = "fused",
                 affine: bool = False, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 dropout: float = 0.0, backend: str = REFERENCE, head: Optional[HeadFactory] = None,
                 output_stride: int = 0, final_bn: bool = True, **kwargs):
        super().__init__(**kwargs)
        channels, blocks, ops = tuple(channels), tuple(blocks), tuple(ops)
        _check_layout(channels, blocks, scope, aggregation)  # the op names: SearchBlock checks them
        plan = reduction_plan(stem, len(channels) - 1, output_stride)
        self.output_stride = output_stride
        self.in_channels, self.channels, self.blocks = in_channels, channels, blocks
        self.stem_kind, self.stem_channels = stem, stem_channels
        self.levels, self.ops, self.scope = levels, ops, scope
        self.backend = check_backend(backend)
        bn = dict(affine=affine, bn_eps=bn_eps, bn_momentum=bn_momentum, backend=self.backend)
        self._block_lambda: List[int] = []
        self._lambdas: List[gluon.Parameter] = []
        with self.name_scope():
            shared = None
            if scope == "share":
                shared = self.params.get("shared_lambda", shape=(num_lambda(levels, len(ops)),),
                                         init=mx.init.One())
                self._lambdas.append(shared)
            self.features = nn.HybridSequential(prefix="")
            self.features.add(Stem(stem, in_channels, stem_channels, prefix="stem_", **bn))
            if stem_channels != channels[0]:
                self.features.add(ConvBNReLU(stem_channels, channels[0], 1, 1,
                                             prefix="adapter_", **bn))
            dilation = 1
            for s, (width, count) in enumerate(zip(channels, blocks)):
                for b in range(count):
                    block = SearchBlock(width, levels, ops, aggregation=aggregation, dilation=dilation,
                                        lam=shared, prefix=f"stage{s}_block{b}_", **bn)
                    self.features.add(block)
                    if shared is None:
                        self._lambdas.append(block.lam)
                    self._block_lambda.append(len(self._lambdas) - 1)
                if s + 1 < len(channels):
                    stride, dil, dilation = plan[s]
                    self.features.add(ReductionBlock(width, channels[s + 1], stride=stride, dilation=dil,
                                                     prefix=f"reduce{s}_", **bn))
            self.final = (BNReLU(channels[-1], True, bn_eps, bn_momentum, self.backend, prefix="final_bn_")
                          if final_bn else None)
            if head is None:
                self.classifier = Classifier(channels[-1], num_classes, dropout, self.backend,
                                             prefix="classifier_")
            else:
                self.classifier = head(channels[-1], "classifier_")

    def hybrid_forward(self, F, x):
        x = self.features(x)
        if self.final is not None:
            x = self.final(x)
        return self.classifier(x)

    def sequential_layers(self) -> List[HybridBlock]:
        """The layers the network applies in sequence (stem, blocks, reductions, final BN, head),
        for mirror mode (:mod:`dso_nas.engine.mirror`)."""
        return list(self.features) + ([self.final] if self.final is not None else []) + [self.classifier]

    def layout(self) -> Layout:
        """The :class:`~dso_nas.spaces.dense.arch.Layout` this supernet was built from."""
        return Layout(stem=self.stem_kind, in_channels=int(self.in_channels), stem_channels=int(self.stem_channels),
                      channels=tuple(int(c) for c in self.channels), blocks=tuple(int(b) for b in self.blocks),
                      levels=int(self.levels), ops=tuple(self.ops))

    # -- parameter groups ------------------------------------------------------------------

    def lambda_params(self) -> List[gluon.Parameter]:
        """Distinct λ Parameters in block order (one for ``share``, one per block for ``full``)."""
        return list(self._lambdas)

    def weight_params(self) -> gluon.ParameterDict:
        """Every Parameter except the λ (network weights, BN parameters and statistics)."""
        lam_names = {p.name for p in self._lambdas}
        out = gluon.ParameterDict(self.prefix)
        out.update({name: p for name, p in self.collect_params().items()
                    if name not in lam_names})
        return out

    def search_blocks(self) -> List[SearchBlock]:
        """The search blocks in network order."""
        return [layer for layer in self.features if isinstance(layer, SearchBlock)]

    def block_lambda_index(self) -> List[int]:
        """For each search block, the index into :meth:`lambda_params` of the λ it uses."""
        return list(self._block_lambda)

    # -- analytic shapes and costs ---------------------------------------------------------

    def block_shapes(self, input_hw: Tuple[int, int]) -> List[Tuple[int, int, int]]:
        """``(C, H, W)`` of the input of each search block for an image of ``input_hw``."""
        shapes = []
        height, width = input_hw
        for layer in self.features:
            if isinstance(layer, SearchBlock):
                shapes.append((layer.channels, height, width))
            _, height, width = layer.out_shape(height, width)
        return shapes

    def cost(self, input_hw: Tuple[int, int],
             masks: Optional[Sequence[np.ndarray]] = None) -> Dict[str, object]:
        """Analytic cost of the network, optionally pruned by λ masks.

        Parameters
        ----------
        input_hw : (int, int)
            Image height and width.
        masks : sequence of bool arrays, optional
            One mask per λ Parameter (see :meth:`lambda_params`); ``None`` keeps everything.

        Returns
        -------
        dict
            ``"total"``: :class:`Cost`; ``"blocks"``: list of :class:`Cost`, one per search
            block; ``"stem"``, ``"final"`` (the final BN, zero without it), ``"classifier"``:
            :class:`Cost`; ``"reductions"``: list of :class:`Cost` (the adapter, if any, is
            counted in ``"stem"``). λ are not counted.
        """
        if masks is not None and len(masks) != len(self._lambdas):
            raise ValueError(f"expected {len(self._lambdas)} λ masks (scope {self.scope!r}), "
                             f"got {len(masks)}")
        height, width = input_hw
        stem, blocks, reductions = Cost.zero(), [], []
        n_block = 0
        for layer in self.features:
            if isinstance(layer, SearchBlock):
                mask = None if masks is None else masks[self._block_lambda[n_block]]
                blocks.append(layer.cost(height, width, mask))
                n_block += 1
            elif isinstance(layer, ReductionBlock):
                reductions.append(layer.cost(height, width))
            else:
                stem = stem + layer.cost(height, width)
            _, height, width = layer.out_shape(height, width)
        final = bn_cost(self.channels[-1]) if self.final is not None else Cost.zero()
        classifier = self.classifier.cost(height, width)
        total = stem + sum(blocks, Cost.zero()) + sum(reductions, Cost.zero()) + final + classifier
        return {"total": total, "blocks": blocks, "stem": stem, "reductions": reductions,
                "final": final, "classifier": classifier}


def _check_layout(channels, blocks, scope: str, aggregation: str) -> None:
    if scope not in SCOPES:
        raise ConfigError(f"unknown search scope {scope!r}; valid: {', '.join(SCOPES)}")
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")
    if not channels or len(channels) != len(blocks):
        raise ConfigError(f"channels {list(channels)} and blocks {list(blocks)} must be "
                          f"non-empty and of the same length (one entry per stage)")
    if any(b < 0 for b in blocks) or any(c < 1 for c in channels):
        raise ConfigError(f"stage widths must be >= 1 and block counts >= 0, got "
                          f"channels={list(channels)}, blocks={list(blocks)}")
