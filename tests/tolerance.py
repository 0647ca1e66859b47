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
