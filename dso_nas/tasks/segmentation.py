"""Semantic segmentation (PASCAL VOC, TPAMI §4.4): a DeepLabv3 head on the backbone's last map,
GluonCV's mixed softmax cross-entropy and its pixel accuracy / mIoU.

The parts are GluonCV 0.10.5's, built rather than restated:

* head: ``gluoncv.model_zoo.deeplabv3._ASPP`` (1x1, three atrous 3x3 and image-pooling branches
  of 256 channels, concat -> 1x1 -> BN -> ReLU -> dropout 0.5) -> 3x3 conv 256 -> BN -> ReLU ->
  dropout -> 1x1 conv to the classes -> bilinear upsampling to the input side, as GluonCV's
  ``_DeepLabHead`` + ``DeepLabV3`` do. ``_DeepLabHead`` itself hard-codes 2048 input channels,
  so the same layers are laid here on the searched backbone's width. ``_ASPP``'s pooling
  branch upsamples to a side fixed at construction: the head is built for the map of a
  ``data.image_size`` input (training crops and evaluation pads share that side).
* auxiliary head (``retrain.aux_weight > 0``): ``gluoncv.model_zoo.fcn._FCNHead`` on the map
  after ``retrain.aux_stage``, upsampled the same way.
* loss: ``gluoncv.loss.MixSoftmaxCrossEntropyLoss(aux=False, ignore_label=-1)`` per output
  (:meth:`Task.objective` adds the auxiliary one with ``retrain.aux_weight``); the datasets
  map VOC's border value 255 to -1. Measured: its gradient is that of the mean over the valid
  pixels of each context's batch, whatever the head gradient, so the aux weight scales the
  logged loss, not the gradient, and the trainer divides by the contexts, not the batch
  (:meth:`Segmentation.step_count`; ``docs/fidelity.md`` deviation 38).
* metric: ``gluoncv.utils.metrics.SegmentationMetric`` (pixel accuracy over labelled pixels,
  IoU per class over the whole evaluation set, mIoU their mean over ``model.num_classes``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mxnet import gluon
from mxnet.gluon import HybridBlock, nn

from ..data import dataset_spec
from ..errors import ConfigError
from ..models.heads import HeadCost, HeadFactory
from ..ops import Cost, bn_cost, conv_cost
from ..spaces import get_space
from .base import Metric, Task

__all__ = ["Segmentation", "DeepLabV3Head", "FCNAuxHead", "SegmentationMeter", "deeplab_head_cost",
           "ASPP_CHANNELS"]

#: Width of every ASPP branch and of the head's 3x3 conv (GluonCV's ``_ASPP`` fixes it).
ASPP_CHANNELS = 256


def _bn_kwargs(cfg: Any) -> Dict[str, float]:
    return {"epsilon": float(cfg.model.bn_eps), "momentum": float(cfg.model.bn_momentum)}


def _upsample(F, x, side: int):
    return F.contrib.BilinearResize2D(x, height=side, width=side)


class DeepLabV3Head(HybridBlock):
    """GluonCV's ASPP -> 3x3 conv -> BN -> ReLU -> dropout -> 1x1 classifier -> upsampling.

    Parameters
    ----------
    in_channels, num_classes : int
        Backbone width and classes.
    rates : sequence of int
        Atrous rates of the three 3x3 branches (6, 12, 18 at output stride 16).
    feature_side, out_side : int
        Side of the map the head reads (its image-pooling branch is upsampled to it) and of
        the output (the input image's).
    dropout : float
        Dropout before the classifier (GluonCV: 0.1).
    bn_kwargs : dict
        ``epsilon`` / ``momentum`` of the head's BatchNorms (γ learnable).
    """

    def __init__(self, in_channels: int, num_classes: int, rates: Sequence[int], feature_side: int,
                 out_side: int, dropout: float = 0.1, bn_kwargs: Optional[Dict[str, float]] = None, **kwargs):
        super().__init__(**kwargs)
        from gluoncv.model_zoo.deeplabv3 import _ASPP  # noqa: PLC0415 - gluoncv's model zoo imports slowly

        self.in_channels, self.num_classes, self.rates = in_channels, num_classes, tuple(int(r) for r in rates)
        self.feature_side, self.out_side = feature_side, out_side
        with self.name_scope():
            self.aspp = _ASPP(in_channels, self.rates, nn.BatchNorm, bn_kwargs, height=feature_side,
                              width=feature_side)
            self.block = nn.HybridSequential(prefix="block_")
            with self.block.name_scope():
                self.block.add(nn.Conv2D(ASPP_CHANNELS, 3, padding=1, use_bias=False, in_channels=ASPP_CHANNELS),
                               nn.BatchNorm(in_channels=ASPP_CHANNELS, **(bn_kwargs or {})), nn.Activation("relu"))
                if dropout > 0:
                    self.block.add(nn.Dropout(dropout))
                self.block.add(nn.Conv2D(num_classes, 1, in_channels=ASPP_CHANNELS))

    def hybrid_forward(self, F, x):
        return _upsample(F, self.block(self.aspp(x)), self.out_side)

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost on an ``in_channels x height x width`` map (:func:`deeplab_head_cost`)."""
        return deeplab_head_cost(self.in_channels, self.num_classes, self.rates, height, width, self.out_side)


def deeplab_head_cost(in_channels: int, num_classes: int, rates: Sequence[int], height: int, width: int,
                      out_side: int) -> Cost:
    """Analytic cost of :class:`DeepLabV3Head`: the ASPP's five branches (the pooling branch's
    global pooling reads the map, its 1x1 conv runs on 1x1), the 1x1 projection of their
    concatenation, the 3x3 conv and the biased 1x1 classifier; BN as in the cost model. The
    two bilinear upsamplings (pooled map to the feature side, logits to ``out_side``) add
    memory traffic only (read and write), no multiply-adds."""
    a, c, hw = ASPP_CHANNELS, in_channels, height * width
    branches = conv_cost(c, a, 1, height, width) + bn_cost(a)
    for rate in rates:
        branches = branches + conv_cost(c, a, 3, height, width, dilation=int(rate)) + bn_cost(a)
    pooling = Cost(0, c * hw, c * hw + c) + conv_cost(c, a, 1, 1, 1) + bn_cost(a) + Cost(0, 0, a + a * hw)
    project = conv_cost(5 * a, a, 1, height, width) + bn_cost(a)
    block = conv_cost(a, a, 3, height, width) + bn_cost(a) + conv_cost(a, num_classes, 1, height, width, bias=True)
    upsample = Cost(0, 0, num_classes * (hw + out_side * out_side))
    return branches + pooling + project + block + upsample


class FCNAuxHead(HybridBlock):
    """GluonCV's ``_FCNHead`` (3x3 conv to ``in_channels // 4`` -> BN -> ReLU -> dropout 0.1 ->
    1x1 to the classes), upsampled to ``out_side``: DeepLabv3's auxiliary loss head."""

    def __init__(self, in_channels: int, num_classes: int, out_side: int,
                 bn_kwargs: Optional[Dict[str, float]] = None, **kwargs):
        super().__init__(**kwargs)
        from gluoncv.model_zoo.fcn import _FCNHead  # noqa: PLC0415 - defers the slow gluoncv import

        if in_channels < 4:
            raise ConfigError(f"the FCN auxiliary head needs a map of at least 4 channels (it narrows to a "
                              f"quarter), the one after retrain.aux_stage has {in_channels}")
        self.out_side = out_side
        with self.name_scope():
            self.fcn = _FCNHead(in_channels, num_classes, nn.BatchNorm, bn_kwargs)

    def hybrid_forward(self, F, x):
        return _upsample(F, self.fcn(x), self.out_side)


class SegmentationMeter(Metric):
    """Running loss and GluonCV's :class:`~gluoncv.utils.metrics.SegmentationMetric` sums; the
    number of classes is the outputs' channel count, read at the first update."""

    def __init__(self) -> None:
        self.metric: Any = None
        self.loss, self.count = 0.0, 0

    def _metric(self, num_classes: int) -> Any:
        if self.metric is None:
            from gluoncv.utils.metrics import SegmentationMetric  # noqa: PLC0415 - defers the slow gluoncv import

            self.metric = SegmentationMetric(int(num_classes))
        return self.metric

    def update(self, loss_sum: float, outputs: Any, labels: Any) -> None:
        self.loss += loss_sum
        self.count += int(labels.shape[0])
        self._metric(outputs.shape[1]).update(labels, outputs)

    def state(self) -> List[float]:
        m = self.metric
        if m is None:
            return [self.loss, float(self.count)]
        inter = np.broadcast_to(np.asarray(m.total_inter, dtype=np.float64), (m.nclass,))
        union = np.broadcast_to(np.asarray(m.total_union, dtype=np.float64), (m.nclass,))
        return [self.loss, float(self.count), float(m.total_correct), float(m.total_label), *inter, *union]

    def load_state(self, state: Sequence[float]) -> None:
        values = [float(v) for v in state]
        self.loss, self.count = values[0], int(round(values[1]))
        if len(values) <= 2:
            return
        n = (len(values) - 4) // 2
        m = self._metric(n)
        m.total_correct, m.total_label = int(round(values[2])), int(round(values[3]))
        m.total_inter = np.rint(values[4:4 + n]).astype(np.int64)
        m.total_union = np.rint(values[4 + n:4 + 2 * n]).astype(np.int64)

    def merge(self, other: "SegmentationMeter") -> None:
        mine, theirs = self.state(), other.state()
        if len(mine) < len(theirs):
            mine = mine + [0.0] * (len(theirs) - len(mine))
        elif len(theirs) < len(mine):
            theirs = theirs + [0.0] * (len(mine) - len(theirs))
        self.load_state([a + b for a, b in zip(mine, theirs)])

    def iou(self) -> np.ndarray:
        """IoU of every class so far (0 for a class never predicted nor labelled, as GluonCV)."""
        m = self.metric
        if m is None:
            return np.zeros(0)
        return np.asarray(m.total_inter, dtype=np.float64) / (np.spacing(1) + np.asarray(m.total_union, np.float64))

    def result(self) -> Dict[str, float]:
        pix_acc, miou = self.metric.get() if self.metric is not None else (0.0, 0.0)
        return {"loss": self.loss / max(self.count, 1), "pixel_accuracy": float(pix_acc), "miou": float(miou)}


class Segmentation(Task):
    """DeepLabv3 on the searched backbone: per-pixel classes of ``model.num_classes``, label -1 ignored."""

    name = "segmentation"

    def check_config(self, cfg: Any) -> None:
        if len(cfg.task.aspp_rates) != 3:
            raise ConfigError(f"task.aspp_rates must name the three atrous rates of the ASPP, got "
                              f"{list(cfg.task.aspp_rates)}")
        if cfg.retrain.label_smoothing > 0:
            raise ConfigError("retrain.label_smoothing is a classification setting; set it to 0 for segmentation")

    def loss(self, label_smoothing: float = 0.0) -> gluon.loss.Loss:
        from gluoncv.loss import MixSoftmaxCrossEntropyLoss  # noqa: PLC0415 - defers the slow gluoncv import

        return MixSoftmaxCrossEntropyLoss(aux=False, ignore_label=-1)

    def metric(self) -> SegmentationMeter:
        return SegmentationMeter()

    @staticmethod
    def sides(cfg: Any) -> Tuple[int, int]:
        """``(feature side, input side)``: the map the head reads and the network input."""
        side = int(dataset_spec(cfg.data.name).input_side(cfg))
        stride = int(get_space(cfg.model.space).final_stride(cfg))
        return -(-side // stride), side

    def head(self, cfg: Any, backend: str, *, dropout: float = 0.0) -> HeadFactory:
        feature, side = self.sides(cfg)
        num_classes, rates, bn = int(cfg.model.num_classes), list(cfg.task.aspp_rates), _bn_kwargs(cfg)
        return lambda channels, prefix: DeepLabV3Head(channels, num_classes, rates, feature, side, dropout, bn,
                                                      prefix=prefix)

    def aux_head(self, cfg: Any, backend: str) -> Optional[HeadFactory]:
        _, side = self.sides(cfg)
        num_classes, bn = int(cfg.model.num_classes), _bn_kwargs(cfg)
        return lambda channels, prefix: FCNAuxHead(channels, num_classes, side, bn, prefix=prefix)

    def head_cost(self, cfg: Any) -> Optional[HeadCost]:
        _, side = self.sides(cfg)
        num_classes, rates = int(cfg.model.num_classes), list(cfg.task.aspp_rates)
        return lambda channels, height, width: deeplab_head_cost(channels, num_classes, rates, height, width, side)

    def step_count(self, batch: int, contexts: int) -> int:
        """The contexts: GluonCV's loss already back-propagates the gradient of the mean over each
        context's valid pixels (its ``SoftmaxOutput`` ignores the head gradient), so dividing by the
        batch again, as GluonCV's script does, would scale every learning rate by 1/batch. With
        this the rates are those of a mean pixel loss, the scale the paper's (DeepLabv3's) are on."""
        return contexts

    def label_shape(self, batch: int, height: int, width: int) -> Tuple[int, ...]:
        return (batch, height, width)

    def result_fields(self, metrics: Dict[str, float], split: str = "test") -> Dict[str, float]:
        return {"miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"], f"{split}_loss": metrics["loss"]}

    def summary(self, metrics: Dict[str, float]) -> str:
        return f"loss {metrics['loss']:.4f} pixAcc {metrics['pixel_accuracy']:.4f} mIoU {metrics['miou']:.4f}"
