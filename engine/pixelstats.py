"""Order statistics of 8-bit pixel values from histograms: O(n) with no sort and no float copy.

The per-image checks on the classify path (focus, grayscale, white cell, white balance) need
percentiles and medians of uint8 images; ``np.percentile`` converts to float64 and partitions,
which at 128 x 128 px costs more than the contrast enhancement itself.
"""

from __future__ import annotations

import numpy as np


def percentile_uint8(values: np.ndarray, q: float, *, offset: int = 0, bins: int = 256) -> float:
    """``np.percentile(values, q)`` (linear interpolation) for integer data in
    ``-offset .. bins - offset - 1`` (uint8 by default), from a histogram."""
    flat = values.ravel()
    counts = np.bincount(flat + offset if offset else flat, minlength=bins)
    cumulative = np.cumsum(counts)
    rank = q / 100.0 * (flat.size - 1)
    lo, frac = int(np.floor(rank)), rank - np.floor(rank)
    lo_value = int(np.searchsorted(cumulative, lo + 1))  # the value at 0-based rank lo
    hi_value = int(np.searchsorted(cumulative, min(lo + 2, flat.size)))
    return lo_value + frac * (hi_value - lo_value) - offset


def median_uint8(values: np.ndarray) -> float:
    """``np.median`` of uint8 values, from a histogram (0.0 for no values)."""
    if values.size == 0:
        return 0.0
    return percentile_uint8(values, 50.0)


__all__ = ["percentile_uint8", "median_uint8"]
