"""Shortcut probes: images that tell whether a call follows the white cell or the field around it.

In the ALL data set every class was photographed with its own acquisition look (background tint,
illumination), so a network can score well by recognising the background. Accuracy on the
model's own test split cannot reveal that: the shortcut holds there too. These builders make
images where the shortcut and the cell disagree, all in memory from (H, W, 3) uint8 RGB fields:

* :func:`cell_free` — the field with every white cell painted out. Nothing is left to judge, so
  a sound model should flag it (or at least not make a confident ALL-subtype call).
* :func:`background_swap` — the white cells of field A on the painted-out field B of another
  class. The truth is A's class; a call of B's class means the background decided.
* :data:`STRONG_SHIFTS` — acquisition changes (stain hue, lamp brightness, white balance,
  optics, compression) stronger than the robustness benchmark's
  (:data:`engine.imaging.augment.ROBUSTNESS_SHIFTS`): what another lab's microscope and camera do.

The paint-out mask (:func:`paint_out_mask`) is deliberately more generous than the white-cell
detector's own mask (:func:`engine.imaging.cells.white_cell_mask`): a lower violet threshold and a
dilation, so that a faint cytoplasm rim or a cell the detector half-misses is removed too, and
the detector is not graded on a field made from its own mask. The swap, by contrast, uses the
detector's mask (a little dilated, with a feathered edge) to cut out the cell, since it must carry
the cell and as little of A's background as possible.

Pure numpy/OpenCV; no Qt, no model.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from engine.imaging.augment import (
    blur,
    brightness_contrast,
    color_cast,
    downscale,
    gamma,
    hue_saturation,
    jpeg,
)
from engine.imaging.cells import (
    DEFAULT_CELL_DETECTOR,
    CellDetectorConfig,
    violet_score,
    white_cell_mask,
)

#: Violet score at or above which a pixel is painted out (the detector's cut is 35-55, relative
#: to the field). 28 leaves most red cells in place (20 removed most of them from the bluish
#: fields, leaving smooth, unrealistic backgrounds) and still leaves no detectable cell: 0 of 456
#: fields (every 6th of the data set) at 28, and at 20.
PAINT_OUT_MIN_SCORE = 28.0
#: Paint-out dilation (ellipse diameter) at :data:`REFERENCE_SIZE` px; scaled with the image.
PAINT_OUT_DILATE_PX = 9
#: Telea inpainting radius at :data:`REFERENCE_SIZE` px; scaled with the image.
INPAINT_RADIUS_PX = 5
#: Swap: dilation of the detector's mask and the Gaussian feather of its edge, at 224 px.
SWAP_DILATE_PX = 5
SWAP_FEATHER_SIGMA_PX = 1.5
#: The data set's field size, at which the pixel constants above are given.
REFERENCE_SIZE = 224


def _check_rgb(rgb: object, name: str = "image") -> np.ndarray:
    """``rgb`` as a contiguous (H, W, 3) uint8 array, or a ``ValueError`` saying what is wrong."""
    if not isinstance(rgb, np.ndarray):  # ValueError like the rest: one exception for bad input
        raise ValueError(  # noqa: TRY004
            f"{name} must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 RGB, got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {rgb.shape}")
    if min(rgb.shape[:2]) < 8:
        raise ValueError(f"{name} is too small ({rgb.shape[0]} x {rgb.shape[1]} px; at least 8 x 8)")
    return np.ascontiguousarray(rgb)


def _scaled(px: float, shape: tuple[int, ...]) -> float:
    """A length given at :data:`REFERENCE_SIZE` px, for an image of ``shape``."""
    return px * min(shape[:2]) / REFERENCE_SIZE


def _ellipse(diameter: float) -> np.ndarray:
    d = max(3, round(diameter))
    d += 1 - d % 2  # odd, so the structuring element is centred
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def paint_out_mask(rgb: np.ndarray) -> np.ndarray:
    """0/255 uint8 (H, W) mask of everything violet: ``violet_score >= 20``, dilated by a 9 px
    ellipse (at 224 px, scaled with the image).

    Deliberately more generous than the detector's (threshold 35, opened, small components
    dropped), so that what is painted out is not decided by the detector being tested.
    """
    rgb = _check_rgb(rgb)
    mask = (violet_score(rgb) >= PAINT_OUT_MIN_SCORE).astype(np.uint8) * 255
    return cv2.dilate(mask, _ellipse(_scaled(PAINT_OUT_DILATE_PX, rgb.shape)))


def cell_free(rgb: np.ndarray) -> np.ndarray:
    """The field with its white cells painted out (Telea inpainting over :func:`paint_out_mask`).

    Telea fills each hole from its rim, i.e. from background and red cells, so the result keeps
    the field's own tint and illumination — exactly the shortcut a model might use — with
    nothing left that a haematologist could classify.
    """
    rgb = _check_rgb(rgb)
    mask = paint_out_mask(rgb)
    if not mask.any():
        return rgb.copy()
    radius = max(1.0, _scaled(INPAINT_RADIUS_PX, rgb.shape))
    return cv2.inpaint(rgb, mask, radius, cv2.INPAINT_TELEA)


def swap_alpha(cells_rgb: np.ndarray, cfg: CellDetectorConfig = DEFAULT_CELL_DETECTOR) -> np.ndarray:
    """float32 (H, W) alpha in [0, 1] of the white cells of ``cells_rgb``: the detector's mask,
    dilated by 5 px and feathered (Gaussian, sigma 1.5 px; both at 224 px, scaled).

    The dilation comes first so the feather falls outside the detected cell: inside it alpha is
    1 and the cell's pixels are carried unchanged. All zeros when no white cell is detected.
    """
    cells_rgb = _check_rgb(cells_rgb, "cells image")
    mask = white_cell_mask(cells_rgb, cfg)
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    core = mask > 0
    mask = cv2.dilate(mask, _ellipse(_scaled(SWAP_DILATE_PX, cells_rgb.shape)))
    # np.ndarray: OpenCV's stubs type GaussianBlur() as returning any numeric array (float32 here).
    alpha: np.ndarray = mask.astype(np.float32) / 255.0
    sigma = _scaled(SWAP_FEATHER_SIGMA_PX, cells_rgb.shape)
    if sigma > 0.3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma)
        alpha[core] = 1.0  # the detected cell itself stays fully opaque
    return np.clip(alpha, 0.0, 1.0)


def background_swap(cells_rgb: np.ndarray, background_rgb: np.ndarray, *,
                    background_free: np.ndarray | None = None,
                    cfg: CellDetectorConfig = DEFAULT_CELL_DETECTOR) -> np.ndarray:
    """The white cells of ``cells_rgb`` (A) composited onto ``cell_free(background_rgb)`` (B).

    B is resized to A's size if needed. The truth of the result is A's class: a call of B's class
    means the model judged the background. ``background_free`` may pass an already computed
    ``cell_free(B)`` (at any size) so a benchmark pairing many fields inpaints each B once.
    If A has no detected white cell the result is just the painted-out B.
    """
    a = _check_rgb(cells_rgb, "cells image")
    if background_free is None:
        background_free = cell_free(_check_rgb(background_rgb, "background image"))
    else:
        background_free = _check_rgb(background_free, "cell-free background")
    h, w = a.shape[:2]
    if background_free.shape[:2] != (h, w):
        shrinking = background_free.shape[0] * background_free.shape[1] > h * w
        background_free = cv2.resize(background_free, (w, h),
                                     interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return composite(a, swap_alpha(a, cfg), background_free)


def composite(cells: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``cells`` where ``alpha`` ((H, W) float in 0..1) is 1, ``background`` where it is 0."""
    a = alpha.astype(np.float32)[..., None]
    out = a * cells.astype(np.float32) + (1.0 - a) * background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _checked(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def shift(im: np.ndarray) -> np.ndarray:
        return fn(_check_rgb(im))
    shift.__doc__ = fn.__doc__
    return shift


#: Mid-grey: the contrast change pivots on it, so it lowers contrast without a brightness change.
_MID = 127.5

#: Strong acquisition shifts: name -> perturbation of a raw (H, W, 3) uint8 RGB field. Stronger
#: than :data:`engine.imaging.augment.ROBUSTNESS_SHIFTS` (and outside most of the training augmentation),
#: each still a field a haematologist would classify without hesitation.
STRONG_SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": _checked(lambda im: im.copy()),
    "hue+18deg": _checked(lambda im: hue_saturation(im, 18.0)),  # +0.05 of the hue circle
    "hue-18deg": _checked(lambda im: hue_saturation(im, -18.0)),
    "brightness_x1.3": _checked(lambda im: brightness_contrast(im, 1.3, 0)),
    "brightness_x0.7": _checked(lambda im: brightness_contrast(im, 0.7, 0)),
    "contrast_x0.7": _checked(lambda im: brightness_contrast(im, 0.7, _MID * 0.3)),
    "gamma_1.3": _checked(lambda im: gamma(im, 1.3)),
    "saturation_x0.7": _checked(lambda im: hue_saturation(im, 0.0, 0.7)),
    "cast_warm": _checked(lambda im: color_cast(im, (1.1, 1.1, 0.85))),  # yellow-green lamp
    "cast_cool": _checked(lambda im: color_cast(im, (0.88, 0.97, 1.12))),  # blue daylight filter
    "blur_sigma1.5": _checked(lambda im: blur(im, 1.5)),
    "jpeg_q25": _checked(lambda im: jpeg(im, 25)),
    "half_resolution": _checked(lambda im: downscale(im, 0.5)),
}


__all__ = ["PAINT_OUT_MIN_SCORE", "STRONG_SHIFTS", "background_swap", "cell_free", "composite", "paint_out_mask",
           "swap_alpha"]
