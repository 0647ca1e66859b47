"""Heads fed by a backbone's feature maps: the classifier and the auxiliary classifier.

Tasks (:mod:`dso_nas.tasks`) choose and build their heads from here; the search spaces only
deliver feature maps.
"""
from __future__ import annotations

from typing import Callable

from mxnet.gluon import HybridBlock, nn

from dso_nas.ops import (REFERENCE, BNReLU, Cost, bn_cost, check_backend, conv_cost, conv_out_size,
                         dense_cost, global_avg_pool, pool_cost)

__all__ = ["HeadFactory", "HeadCost", "Classifier", "classifier_cost", "AuxHead", "aux_head_cost", "AUX_MID",
           "AUX_OUT"]

AUX_MID, AUX_OUT = 128, 768

#: ``(in_channels, prefix) -> HybridBlock``: a task's head on a backbone's last feature map.
HeadFactory = Callable[[int, str], HybridBlock]
#: ``(channels, height, width) -> Cost``: the analytic cost of that head.
HeadCost = Callable[[int, int, int], Cost]


class Classifier(HybridBlock):
    """Global average pooling -> dropout (when ``dropout > 0``) -> dense.

    Parameters
    ----------
    in_channels : int
        Channels of the last feature map.
    num_classes : int
        Output units.
    dropout : float
        Dropout rate before the dense layer.
    backend : {"onednn", "reference"}
        How the pooling is computed (:func:`dso_nas.ops.global_avg_pool`).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0,
                 backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, dropout
        self.backend = check_backend(backend)
        with self.name_scope():
            self.drop = nn.Dropout(dropout) if dropout > 0 else None
            self.fc = nn.Dense(num_classes, in_units=in_channels)

    def hybrid_forward(self, F, x):
        x = global_avg_pool(F, x, self.backend)
        if self.drop is not None:
            x = self.drop(x)
        return self.fc(x)

    def cost(self, height: int, width: int) -> Cost:
        """Analytic cost for an input of ``in_channels x height x width``."""
        return classifier_cost(self.in_channels, self.num_classes, height, width)


def classifier_cost(in_channels: int, num_classes: int, height: int, width: int) -> Cost:
    """Analytic cost of :class:`Classifier` (global pooling as a whole-map window)."""
    plane = in_channels * height * width
    return Cost(0, plane, plane + in_channels) + dense_cost(in_channels, num_classes)


class AuxHead(HybridBlock):
    """Auxiliary classifier (release/NASNet style).

    BN -> ReLU -> ``5 x 5`` average pooling (stride ``pool_stride``, no padding) ->
    ``1 x 1`` conv 128 -> BN -> ReLU -> ``2 x 2`` conv 768 (no padding) -> BN -> ReLU ->
    global average pooling -> dense. Needs an input of at least ``5 x 5`` (CIFAR: 8x8
    after the second reduction with stride 3; ImageNet: 7x7 with stride 2).
    """

    def __init__(self, in_channels: int, num_classes: int, pool_stride: int = 3,
                 affine: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.9,
                 backend: str = REFERENCE, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.num_classes, self.pool_stride = in_channels, num_classes, pool_stride
        self.backend = check_backend(backend)
        with self.name_scope():
            self.bn0 = BNReLU(in_channels, affine, bn_eps, bn_momentum, self.backend, prefix="bn0_")
            self.conv1 = nn.Conv2D(AUX_MID, 1, use_bias=False, in_channels=in_channels, prefix="conv1_")
            self.bn1 = BNReLU(AUX_MID, affine, bn_eps, bn_momentum, self.backend, prefix="bn1_")
            self.conv2 = nn.Conv2D(AUX_OUT, 2, use_bias=False, in_channels=AUX_MID, prefix="conv2_")
            self.bn2 = BNReLU(AUX_OUT, affine, bn_eps, bn_momentum, self.backend, prefix="bn2_")
            self.fc = nn.Dense(num_classes, in_units=AUX_OUT, prefix="fc_")

    def hybrid_forward(self, F, x):
        x = F.Pooling(self.bn0(x), kernel=(5, 5), stride=(self.pool_stride,) * 2,
                      pool_type="avg")
        x = self.bn1(self.conv1(x))
        x = self.bn2(self.conv2(x))
        return self.fc(global_avg_pool(F, x, self.backend))


def aux_head_cost(in_channels: int, num_classes: int, height: int, width: int,
                  pool_stride: int = 3, affine: bool = True) -> Cost:
    """Analytic cost of :class:`AuxHead` on an ``in_channels x height x width`` input."""
    h = conv_out_size(height, 5, pool_stride, 0)
    w = conv_out_size(width, 5, pool_stride, 0)
    h2, w2 = conv_out_size(h, 2, 1, 0), conv_out_size(w, 2, 1, 0)
    return (bn_cost(in_channels, affine=affine)
            + pool_cost(in_channels, 5, height, width, pool_stride, 0)
            + conv_cost(in_channels, AUX_MID, 1, h, w) + bn_cost(AUX_MID, affine=affine)
            + conv_cost(AUX_MID, AUX_OUT, 2, h, w, pad=0) + bn_cost(AUX_OUT, affine=affine)
            + Cost(0, AUX_OUT * h2 * w2, AUX_OUT * h2 * w2 + AUX_OUT)
            + dense_cost(AUX_OUT, num_classes))


