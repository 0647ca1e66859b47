"""Float32 rounding bounds for tests that compare one quantity computed in two orders.

A float32 sum of ``n`` terms (a convolution window, a pooling window, a dot product, a batch
reduction), added in any order, is off the exact sum by at most ``gamma(n)·Σ|term|`` with
``gamma(n) = n·u / (1 - n·u)`` and ``u = 2**-24`` (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., §3.1; a product adds one rounding, counted by taking ``n`` one larger).
Two such computations of the same sum therefore differ by at most ``2·gamma(n)·Σ|term|``, on any
CPU. For a linear op, ``Σ|term|`` of every output is the same op applied to the absolute values
of its operands, which the tests compute with the reference form.
"""
from __future__ import annotations

import numpy as np

#: float32's unit roundoff: one rounding to float32 is off by at most this much, relative.
U32 = 2.0 ** -24


def gamma(n: int) -> float:
    """Higham's bound on the relative error of a float32 sum of ``n`` terms."""
    if n * U32 >= 1:
        raise ValueError(f"{n} terms are too many for float32's bound")
    return n * U32 / (1.0 - n * U32)


def assert_within_rounding(a, b, terms: int, magnitude, what: str = "") -> None:
    """``|a - b| <= 2·gamma(terms)·magnitude`` elementwise: two float32 evaluations of sums of
    at most ``terms`` terms whose absolute values add up to ``magnitude``."""
    a, b, magnitude = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(magnitude, np.float64)
    bound = 2.0 * gamma(terms) * magnitude
    err = np.abs(a - b)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert (err <= bound).all(), (f"{what}: |diff| {err[worst]:.3g} above the rounding bound {bound[worst]:.3g} "
                                  f"({terms} terms) at {worst}")


def layered_rtol(layers: int, terms: int) -> float:
    """A first-order bound, relative to an output's (or gradient's) largest magnitude, on two
    float32 evaluations of a network that differ only in summation order.

    Each of at most ``layers`` summing layers on a path (convolutions, dense layers, the λ sums,
    BatchNorm's batch statistics) sums at most ``terms`` terms and so adds at most
    ``2·gamma(terms)`` of the magnitudes it sums; BatchNorm and ReLU pass a relative error on
    without amplifying it to first order (BN divides it by the same σ as the signal), so the
    errors of the layers add up. Worst case, not the typical error (which is far smaller): a
    wrong computation (a missing edge, a wrong scale) differs by O(1) and still fails.
    """
    return 2.0 * layers * gamma(terms)


def net_rtol(net, input_shape) -> float:
    """:func:`layered_rtol` of a Gluon network: its weight tensors as the summing layers (every
    one counted as if on one path), the largest fan-in or batch-position count as the terms."""
    weights = [p.shape for name, p in net.collect_params().items() if name.endswith("weight") and p.shape]
    n, _, h, w = input_shape
    fan_in = max((int(np.prod(s[1:])) for s in weights), default=9)  # no weights: a 3 x 3 window
    return layered_rtol(len(weights) + 1, max(fan_in, n * h * w))  # + 1: the loss's own sum


def assert_close_rel(a, b, rtol: float, what: str = "", floor: float = 0.0) -> None:
    """``max|a - b| <= rtol · max(max|b|, floor)``. An array whose terms cancel (a gradient summed
    over a batch) can be far smaller than the terms its rounding scales with; ``floor`` is the
    magnitude below which it is compared absolutely (an all-zero ``b`` with no floor: at 1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.abs(b).max()) if b.size else 0.0, floor)
    err = float(np.abs(a - b).max()) if a.size else 0.0
    assert err <= rtol * (scale or 1.0), f"{what}: max |diff| {err:.3g} above {rtol:.3g} x scale {scale:.3g}"
