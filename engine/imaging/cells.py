"""White-cell detection in a smear field: the "is there anything to judge here" check.

In a Wright/Giemsa-stained smear a white cell's nucleus (and a blast's cytoplasm) is violet:
relative to the field's own background it moves up in LAB's a* (magenta) and down in b*
(blue), while red cells stay near the background's hue and the background defines zero. The
detector scores every pixel by ``(a* - a*_bg) - (b* - b*_bg)``, the background being the median
colour of the brightest 30 % of the field, thresholds that score, opens the mask, and keeps the
connected components large enough to be a cell. Working relative to the field's own
background makes it indifferent to the illumination tint that differs between acquisitions.

Why not the original work's LAB colour masks: on this data set they select most red cells too
(docs/results.md, "White-cell detector"), so "no mask pixels" never happens on a real field.

Everything runs on the field resized to :attr:`CellDetectorConfig.analysis_size` (128 px: about
0.2 ms an image), and masks are returned at the size of the image given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.imaging.pixelstats import median_uint8, percentile_uint8


@dataclass(frozen=True)
class CellDetectorConfig:
    """Detector parameters (stored in the model card's ``cells`` section)."""

    analysis_size: int = 128
    #: Violet score (LAB a*-b* above the background's) a pixel needs to count as white cell: half
    #: the field's own 99.5th-percentile score, kept within ``min_score..max_score``. Relative to
    #: the field, because the bluish red cells of some acquisitions score 35-50 beside blasts
    #: scoring 110+, while pale pro-B blasts of others score only ~60.
    min_score: float = 35.0
    max_score: float = 55.0
    relative_score: float = 0.5
    #: Smallest component, as a fraction of the analysed field, that counts as a cell. At 128 px
    #: this is 40 px; the smallest "largest component" among the data set's fields is ~110 px.
    min_area_fraction: float = 40 / 128**2
    #: Brightest share of pixels taken as background for the colour reference.
    background_share: float = 0.30


DEFAULT_CELL_DETECTOR = CellDetectorConfig()


@dataclass(frozen=True)
class CellBox:
    """One detected white cell, in the coordinates of the image given (pixels)."""

    x: int
    y: int
    width: int
    height: int
    #: Component area as a fraction of the whole field.
    area_fraction: float


def _analysis_image(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def _violet_u8(rgb: np.ndarray, background_share: float) -> np.ndarray:
    """The violet score plus 128, saturated to uint8 (-128..127): one OpenCV pass."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    light, a, b = cv2.split(lab)
    cut = percentile_uint8(light, 100 * (1 - background_share))
    # OpenCV's stubs type compare()'s src2 as an array only; it takes a scalar threshold as well.
    background = cv2.compare(light, cut, cv2.CMP_GE)  # type: ignore[call-overload]
    offset = median_uint8(a, background) - median_uint8(b, background)
    return cv2.addWeighted(a, 1.0, b, -1.0, 128.0 - offset)


def violet_score(rgb: np.ndarray, background_share: float = 0.30) -> np.ndarray:
    """Per-pixel ``(a*-a*_bg) - (b*-b*_bg)`` of an (H, W, 3) uint8 RGB image, as int16 within
    -128..127 (the background's a* and b* are medians over its brightest pixels)."""
    return _violet_u8(rgb, background_share).astype(np.int16) - 128


def _components(rgb: np.ndarray, cfg: CellDetectorConfig):
    small = _analysis_image(rgb, cfg.analysis_size)
    score = _violet_u8(small, cfg.background_share)
    top = percentile_uint8(score, 99.5) - 128
    cut = float(np.clip(cfg.relative_score * top, cfg.min_score, cfg.max_score))
    # OpenCV's stubs type compare()'s src2 as an array only; it takes a scalar threshold as well.
    mask = cv2.compare(score, cut + 128, cv2.CMP_GE) // 255  # type: ignore[call-overload]
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = cfg.min_area_fraction * cfg.analysis_size**2
    keep = (np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1).tolist()  # label 0 is background
    return labels, stats, keep


def white_cell_mask(rgb: np.ndarray, cfg: CellDetectorConfig = DEFAULT_CELL_DETECTOR) -> np.ndarray:
    """0/255 uint8 mask of the detected white cells, at the size of ``rgb``."""
    labels, _, keep = _components(rgb, cfg)
    # np.ndarray: OpenCV's stubs type resize() as returning any numeric array (uint8 here).
    mask: np.ndarray = np.isin(labels, keep).astype(np.uint8) * 255
    h, w = rgb.shape[:2]
    if mask.shape != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return mask


def find_white_cells(rgb: np.ndarray, cfg: CellDetectorConfig = DEFAULT_CELL_DETECTOR) -> list[CellBox]:
    """The detected white cells, largest first, as boxes in ``rgb``'s pixel coordinates."""
    _, stats, keep = _components(rgb, cfg)
    h, w = rgb.shape[:2]
    sx, sy = w / cfg.analysis_size, h / cfg.analysis_size
    total = float(cfg.analysis_size**2)
    boxes = [CellBox(int(stats[i, 0] * sx), int(stats[i, 1] * sy), max(1, round(stats[i, 2] * sx)),
                     max(1, round(stats[i, 3] * sy)), float(stats[i, 4]) / total) for i in keep]
    return sorted(boxes, key=lambda b: -b.area_fraction)


def has_white_cell(rgb: np.ndarray, cfg: CellDetectorConfig = DEFAULT_CELL_DETECTOR) -> bool:
    """True when at least one component large enough to be a white cell is found."""
    return bool(_components(rgb, cfg)[2])


__all__ = ["CellDetectorConfig", "DEFAULT_CELL_DETECTOR", "CellBox", "violet_score",
           "white_cell_mask", "find_white_cells", "has_white_cell"]
