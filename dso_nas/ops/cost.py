"""The analytic cost model used everywhere in the package (:class:`Cost`).

* ``params``: trainable parameters only: conv/dense weights and biases, BN β, and BN γ only
  when it is learnable (``affine=True``). BN running statistics are excluded.
* ``flops``: multiply-adds of convolutions (``k·k·c_in/groups·c_out·h_out·w_out``) and dense
  layers (``in·out``), plus ``k·k·c·h_out·w_out`` for a ``k x k`` pooling (a global average
  pooling is a pooling whose window is the whole map). BN, ReLU and element-wise sums
  are not counted (BN folds into the preceding conv at inference).
* ``mac``: memory access cost in elements, as in ShuffleNet v2: every conv, pooling or dense
  layer reads its input map and weights and writes its output map; an ``n``-input
  element-wise sum reads ``n`` maps and writes one. BN and ReLU are taken to be fused into
  the layer before them (no extra traffic).

:func:`dso_nas.ops.graph.graph_cost` checks these counts against the built graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable

__all__ = ["Cost", "total", "conv_out_size", "conv_cost", "bn_cost", "pool_cost", "dense_cost",
           "sum_cost"]


@dataclass(frozen=True)
class Cost:
    """Analytic cost of a piece of network.

    Attributes
    ----------
    params : int
        Trainable parameters.
    flops : int
        Multiply-adds (see the module docstring for what is counted).
    mac : int
        Memory access cost in elements (feature maps read and written plus weights read).
    """

    params: int = 0
    flops: int = 0
    mac: int = 0

    @staticmethod
    def zero() -> "Cost":
        """The neutral element, for ``sum(costs, Cost.zero())``."""
        return Cost(0, 0, 0)

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(self.params + other.params, self.flops + other.flops, self.mac + other.mac)

    def __radd__(self, other):
        # lets the builtin sum() start from 0
        if other == 0:
            return self
        return self.__add__(other)

    def as_dict(self) -> Dict[str, int]:
        """``{"params": ..., "flops": ..., "mac": ...}``."""
        return {"params": self.params, "flops": self.flops, "mac": self.mac}


def total(costs: Iterable[Cost]) -> Cost:
    """Sum of costs."""
    return sum(costs, Cost.zero())


def conv_out_size(size: int, kernel: int, stride: int = 1, pad: int = -1, dilation: int = 1) -> int:
    """Output length of a convolution/pooling along one axis.

    ``pad=-1`` means "same" padding for odd kernels: ``dilation·(kernel // 2)``.
    """
    if pad < 0:
        pad = dilation * (kernel // 2)
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def conv_cost(c_in: int, c_out: int, kernel: int, height: int, width: int, stride: int = 1,
              groups: int = 1, bias: bool = False, pad: int = -1, dilation: int = 1) -> Cost:
    """Cost of a ``kernel x kernel`` convolution on a ``c_in x height x width`` input."""
    h_out = conv_out_size(height, kernel, stride, pad, dilation)
    w_out = conv_out_size(width, kernel, stride, pad, dilation)
    weights = kernel * kernel * (c_in // groups) * c_out
    params = weights + (c_out if bias else 0)
    flops = weights * h_out * w_out
    mac = c_in * height * width + c_out * h_out * w_out + params
    return Cost(params, flops, mac)


def bn_cost(channels: int, height: int = 0, width: int = 0, affine: bool = True) -> Cost:
    """Cost of a BatchNorm: only its trainable parameters (β, and γ when ``affine``).

    ``height``/``width`` are accepted for a uniform signature; BN adds no FLOPs/MAC here
    (fused into the layer before it).
    """
    del height, width
    return Cost(params=channels * (2 if affine else 1))


def pool_cost(channels: int, kernel: int, height: int, width: int, stride: int = 1,
              pad: int = -1) -> Cost:
    """Cost of a ``kernel x kernel`` pooling: ``k·k·c`` per output position, no parameters."""
    h_out = conv_out_size(height, kernel, stride, pad)
    w_out = conv_out_size(width, kernel, stride, pad)
    flops = kernel * kernel * channels * h_out * w_out
    mac = channels * height * width + channels * h_out * w_out
    return Cost(0, flops, mac)


def dense_cost(in_units: int, out_units: int, bias: bool = True) -> Cost:
    """Cost of a fully connected layer on a vector of ``in_units``."""
    weights = in_units * out_units
    params = weights + (out_units if bias else 0)
    return Cost(params, weights, in_units + out_units + params)


def sum_cost(n_inputs: int, channels: int, height: int, width: int) -> Cost:
    """Cost of an element-wise sum of ``n_inputs`` maps (nothing when ``n_inputs < 2``)."""
    if n_inputs < 2:
        return Cost.zero()
    return Cost(0, 0, (n_inputs + 1) * channels * height * width)
