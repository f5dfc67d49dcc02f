"""Order statistics of 8-bit pixel values from histograms: O(n) with no sort and no float copy.

The per-image checks on the classify path (focus, grayscale, white cell, white balance) need
percentiles and medians of uint8 images; ``np.percentile`` converts to float64 and partitions,
which at 128 x 128 px costs more than the contrast enhancement itself. OpenCV's ``calcHist``
builds the histogram (optionally of the pixels under a mask, with no copy) in ~15 us.
"""

from __future__ import annotations

import cv2
import numpy as np


def histogram(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """256-bin counts of a uint8 array (of the pixels where ``mask`` is non-zero, if given)."""
    if values.dtype == np.uint8 and values.ndim == 2 and (mask is None or mask.shape == values.shape):
        m = None if mask is None else np.ascontiguousarray(mask, np.uint8)
        return cv2.calcHist([np.ascontiguousarray(values)], [0], m, [256], [0, 256]).ravel().astype(np.int64)
    flat = values.ravel() if mask is None else values[mask.astype(bool)]
    return np.bincount(flat.astype(np.intp), minlength=256)


def percentile_from_histogram(counts: np.ndarray, q: float) -> float:
    """``np.percentile`` (linear interpolation) of the values whose histogram is ``counts``."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1]) if len(cumulative) else 0
    if n == 0:
        return 0.0
    rank = q / 100.0 * (n - 1)
    lo, frac = int(np.floor(rank)), rank - np.floor(rank)
    lo_value = int(np.searchsorted(cumulative, lo + 1))  # the value at 0-based rank lo
    hi_value = int(np.searchsorted(cumulative, min(lo + 2, n)))
    return lo_value + frac * (hi_value - lo_value)


def percentile_uint8(values: np.ndarray, q: float, mask: np.ndarray | None = None) -> float:
    """``np.percentile(values, q)`` for uint8 data (under ``mask``, if given)."""
    return percentile_from_histogram(histogram(values, mask), q)


def median_uint8(values: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``np.median`` of uint8 values (under ``mask``, if given; 0.0 for no values)."""
    return percentile_uint8(values, 50.0, mask)


__all__ = ["histogram", "percentile_from_histogram", "percentile_uint8", "median_uint8"]
