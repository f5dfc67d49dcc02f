"""Image-level checks, before the network: blank, grayscale, out of focus, no white cell.

They run on the centre-cropped, resized original of every image (:class:`Classifier` calls
:func:`image_level_flags`) and need no model: an image that fails one is flagged with that
reason whatever the network says about it.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.core.flags import FlagReason
from engine.imaging.cells import has_white_cell
from engine.imaging.pixelstats import percentile_uint8

#: Image-level out-of-distribution checks, on the centre-cropped, resized original (0..255).
#: Real smears measure a per-channel standard deviation of 17+ and a 99th-percentile chroma
#: (max - min of R, G, B) of 65+; these limits leave a wide margin.
BLANK_MAX_CHANNEL_STD = 4.0
GRAYSCALE_MAX_CHROMA_P99 = 12.0
#: Focus: the variance of the Laplacian of the grey image at 128 x 128 px. The 2,735 fields of
#: the data set measure 66 at the least (median 447); Gaussian defocus of sigma 3 px at 224 px
#: brings every one of them under 31 (sigma 2: median 43). Smaller images are not judged.
FOCUS_ANALYSIS_SIZE = 128
FOCUS_MIN_SHARPNESS = 35.0


def sharpness(original: np.ndarray) -> float | None:
    """Variance of the Laplacian of an (S, S, 3) uint8 image's grey levels at
    :data:`FOCUS_ANALYSIS_SIZE` px (``None`` when the image is smaller than that)."""
    if min(original.shape[:2]) < FOCUS_ANALYSIS_SIZE:
        return None
    gray = cv2.cvtColor(original, cv2.COLOR_RGB2GRAY)
    if gray.shape[:2] != (FOCUS_ANALYSIS_SIZE, FOCUS_ANALYSIS_SIZE):
        gray = cv2.resize(gray, (FOCUS_ANALYSIS_SIZE, FOCUS_ANALYSIS_SIZE), interpolation=cv2.INTER_AREA)
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return float(std[0, 0]) ** 2


def image_level_flags(original: np.ndarray) -> list[FlagReason]:
    """Reasons an (S, S, 3) uint8 image cannot be judged, found without the network: blank,
    grayscale, out of focus, no white cell (empty list if none)."""
    reasons = []
    _, std = cv2.meanStdDev(original)
    blank = float(std.max()) < BLANK_MAX_CHANNEL_STD
    if blank:
        reasons.append(FlagReason.BLANK)
    r, g, b = cv2.split(original)  # cv2, not ndarray.max(axis=2): ~10x faster on 3 channels
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    grayscale = percentile_uint8(chroma, 99) < GRAYSCALE_MAX_CHROMA_P99
    if grayscale:
        reasons.append(FlagReason.GRAYSCALE)
    focus = None if blank else sharpness(original)  # a blank frame has no edges to focus on
    if focus is not None and focus < FOCUS_MIN_SHARPNESS:
        reasons.append(FlagReason.OUT_OF_FOCUS)
    # A field with no white cell has nothing the model can judge, whatever it says about it.
    if not blank and not grayscale and not has_white_cell(original):
        reasons.append(FlagReason.NO_WHITE_CELL)
    return reasons


def image_level_ood(original: np.ndarray) -> list[str]:
    """The image-level reasons as plain sentences (kept for callers that show them)."""
    return [r.sentence for r in image_level_flags(original)]
