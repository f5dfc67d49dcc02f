"""Image perturbations: training augmentation and the robustness benchmark's shifts.

All operate on (S, S, 3) uint8 RGB images *before* preprocessing, so the model learns from (and
is tested on) what a different microscope, camera or stain does to the raw image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


def flip_rotate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    return np.ascontiguousarray(np.rot90(img, int(rng.integers(4))))


def brightness_contrast(img: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return cv2.convertScaleAbs(img, alpha=alpha, beta=beta)


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    lut = np.clip(((np.arange(256) / 255.0) ** g) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def hue_saturation(img: np.ndarray, hue_shift: float, sat_scale: float = 1.0) -> np.ndarray:
    """Shift hue by ``hue_shift`` degrees and scale saturation (a stain-colour change)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue_shift * 256.0 / 360.0) % 256.0
    hsv[..., 1] = np.clip(hsv[..., 1] * sat_scale, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma) if sigma > 0 else img


def downscale(img: np.ndarray, factor: float) -> np.ndarray:
    """Lower camera resolution: shrink by ``factor`` then scale back up."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(8, int(w * factor)), max(8, int(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return img
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None  # the JPEG OpenCV has just encoded always decodes
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def zoom(img: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Crop a random square of ``scale`` times the side and resize back (magnification change)."""
    h, w = img.shape[:2]
    side = max(8, int(min(h, w) * scale))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return cv2.resize(img[top:top + side, left:left + side], (w, h), interpolation=cv2.INTER_LINEAR)


def color_cast(img: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Multiply R, G, B by ``gains``: another lamp, filter or camera white balance (e.g. the
    yellow-green background of some fields in the data set)."""
    return cv2.convertScaleAbs(img.astype(np.float32) * np.asarray(gains, np.float32))


def zoom_out(img: np.ndarray, scale: float) -> np.ndarray:
    """Lower magnification: shrink to ``scale`` and fill the border by reflection."""
    h, w = img.shape[:2]
    sh, sw = max(8, int(h * scale)), max(8, int(w * scale))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    top, left = (h - sh) // 2, (w - sw) // 2
    return cv2.copyMakeBorder(small, top, h - sh - top, left, w - sw - left, cv2.BORDER_REFLECT_101)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation strength; stored in the model card's training recipe."""

    geometric: bool = True
    p_photometric: float = 0.8
    p_blur: float = 0.25
    p_downscale: float = 0.2
    p_jpeg: float = 0.25
    p_zoom: float = 0.3
    hue_degrees: float = 8.0
    #: Per-channel gain (white balance) change, each gain in 1 ± ``cast_strength``.
    p_color_cast: float = 0.0
    cast_strength: float = 0.15
    #: Magnification lowered to 0.65-0.95 of the field.
    p_zoom_out: float = 0.0
    #: Probability of pasting the image's white cells onto the cell-free background of another
    #: training image (any class): the background then carries no information about the class.
    p_background_swap: float = 0.0
    #: Photometric ranges: multiplicative brightness, contrast around mid-grey, gamma, saturation.
    brightness_range: tuple[float, float] = (1.0, 1.0)
    contrast_range: tuple[float, float] = (0.8, 1.2)
    #: Grey level the contrast change pivots on (0: a plain gain, as the standard recipe had).
    contrast_pivot: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.4)
    saturation_range: tuple[float, float] = (0.8, 1.2)
    blur_max_sigma: float = 1.5
    jpeg_min_quality: int = 40

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """``standard`` (the first shipped recipe), ``microscope`` (standard + white-balance
        casts and lower magnification: what a different microscope or camera does), ``cell``
        (background swap + strong stain and illumination changes: the 1.2 recipe), ``none``."""
        if name == "standard":
            return cls()
        if name == "microscope":
            return cls(p_color_cast=0.5, p_zoom_out=0.25)
        if name == "cell":
            # The call must follow the white cell: 60 % of the images get another image's background
            # (which also carries that image's scale-bar label, class-correlated in this data set),
            # and stain/illumination ranges wide enough to cover another microscope's.
            return cls(p_photometric=0.9, hue_degrees=22.0, p_color_cast=0.6, cast_strength=0.18,
                       p_zoom_out=0.2, p_background_swap=0.6, brightness_range=(0.7, 1.32),
                       contrast_range=(0.62, 1.3), contrast_pivot=128.0, gamma_range=(0.7, 1.45), saturation_range=(0.6, 1.3),
                       p_blur=0.35, blur_max_sigma=2.0, p_downscale=0.3, p_jpeg=0.35, jpeg_min_quality=20)
        if name == "none":
            return cls(geometric=False, p_photometric=0, p_blur=0, p_downscale=0, p_jpeg=0, p_zoom=0)
        raise ValueError(f"unknown augmentation preset {name!r}; use standard, microscope, cell or none")


class BackgroundSwapper(Protocol):
    """Pastes training image ``i``'s white cells onto another image's cell-free background
    (:class:`engine.imaging.background_swap.BackgroundBank`)."""

    def swap(self, i: int, image: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def augment(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig,
            swap: tuple[BackgroundSwapper, int] | None = None) -> np.ndarray:
    """One random augmentation of ``img``; ``swap`` = (bank, index of ``img`` in it) enables
    background swap (before anything else, so the pasted field is then augmented as a whole)."""
    if swap is not None and cfg.p_background_swap and rng.random() < cfg.p_background_swap:
        bank, index = swap
        img = bank.swap(index, img, rng)
    if cfg.geometric:
        img = flip_rotate(img, rng)
    if rng.random() < cfg.p_zoom:
        img = zoom(img, rng.uniform(0.8, 1.0), rng)
    elif cfg.p_zoom_out and rng.random() < cfg.p_zoom_out:
        img = zoom_out(img, rng.uniform(0.65, 0.95))
    if rng.random() < cfg.p_photometric:
        c = rng.uniform(*cfg.contrast_range)
        img = brightness_contrast(img, c, rng.uniform(-20, 20) + cfg.contrast_pivot * (1 - c))
        if cfg.brightness_range != (1.0, 1.0):
            img = brightness_contrast(img, rng.uniform(*cfg.brightness_range), 0)
        lo, hi = cfg.gamma_range
        img = gamma(img, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
        img = hue_saturation(img, rng.uniform(-cfg.hue_degrees, cfg.hue_degrees), rng.uniform(*cfg.saturation_range))
    if cfg.p_color_cast and rng.random() < cfg.p_color_cast:
        k = cfg.cast_strength
        r, g, b = (float(v) for v in rng.uniform(1 - k, 1 + k, 3))
        img = color_cast(img, (r, g, b))
    if rng.random() < cfg.p_blur:
        img = blur(img, rng.uniform(0.3, cfg.blur_max_sigma))
    if rng.random() < cfg.p_downscale:
        img = downscale(img, rng.uniform(0.4, 0.9))
    if rng.random() < cfg.p_jpeg:
        img = jpeg(img, int(rng.integers(cfg.jpeg_min_quality, 96)))
    return img


#: The robustness benchmark: name -> perturbation of a raw (S, S, 3) image.
ROBUSTNESS_SHIFTS = {
    "clean": lambda im: im,
    "blur_sigma1": lambda im: blur(im, 1.0),
    "blur_sigma2": lambda im: blur(im, 2.0),
    "jpeg_q50": lambda im: jpeg(im, 50),
    "jpeg_q20": lambda im: jpeg(im, 20),
    "brightness+25": lambda im: brightness_contrast(im, 1.0, 25),
    "brightness-25": lambda im: brightness_contrast(im, 1.0, -25),
    "contrast_x0.8": lambda im: brightness_contrast(im, 0.8, 255 * 0.1),
    "contrast_x1.2": lambda im: brightness_contrast(im, 1.2, -255 * 0.1),
    "gamma_0.8": lambda im: gamma(im, 0.8),
    "gamma_1.25": lambda im: gamma(im, 1.25),
    "hue+5deg": lambda im: hue_saturation(im, 5),
    "hue-5deg": lambda im: hue_saturation(im, -5),
    "half_resolution": lambda im: downscale(im, 0.5),
    "quarter_resolution": lambda im: downscale(im, 0.25),
}
