"""Vectorised training augmentation driven by an explicit ``np.random.Generator``.

The geometric part (zero-pad, random crop, horizontal flip) works on the uint8 NHWC
batch; cutout (DeVries & Taylor 2017) must zero pixels *after* normalisation, so it is a
separate keep-mask that the loader multiplies into the normalised float batch. Random
numbers are drawn in a fixed order from the generator: crop tops, crop lefts, flips,
then cutout rows and columns, one value per image each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class Augment:
    """Pad-and-crop, flip and cutout parameters.

    Parameters
    ----------
    pad : int
        Zero padding on each side before cropping back to the original size.
    flip : bool
        Flip each image horizontally with probability 0.5.
    cutout : int
        Side of the square zeroed per image after normalisation (0: none).
    """

    pad: int = 4
    flip: bool = True
    cutout: int = 0

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Randomly crop (after zero padding) and flip a uint8 ``(N, H, W, C)`` batch."""
        n, h, w, _ = batch.shape
        p = self.pad
        padded = np.pad(batch, ((0, 0), (p, p), (p, p), (0, 0))) if p else batch
        top, left = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
        windows = sliding_window_view(padded, (h, w), axis=(1, 2))  # (N, 2p+1, 2p+1, C, h, w)
        out = np.ascontiguousarray(windows[np.arange(n), top, left].transpose(0, 2, 3, 1))
        if self.flip:
            flips = rng.random(n) < 0.5
            out[flips] = out[flips, :, ::-1]
        return out

    def cutout_mask(self, n: int, h: int, w: int,
                    rng: np.random.Generator) -> Optional[np.ndarray]:
        """Float32 keep-mask ``(N, 1, H, W)``: 0 in one square per image, else 1.

        The square has side ``cutout`` and a centre drawn uniformly over the image; it is
        clipped at the borders. None when ``cutout`` is 0.
        """
        if self.cutout <= 0:
            return None
        top = rng.integers(0, h, n) - self.cutout // 2
        left = rng.integers(0, w, n) - self.cutout // 2
        ys, xs = np.arange(h), np.arange(w)
        in_rows = (ys >= top[:, None]) & (ys < top[:, None] + self.cutout)
        in_cols = (xs >= left[:, None]) & (xs < left[:, None] + self.cutout)
        return (~(in_rows[:, :, None] & in_cols[:, None, :]))[:, None].astype(np.float32)
