"""Preprocessing of the original research, in one function used by every path.

Stages: square centre crop and resize to the model's input size -> contrast enhancement (CLAHE
on the L channel in LAB) -> three colour masks in OpenCV's 8-bit LAB (pink, blue, purple of the
original work) combined into one mask -> the mask applied to the enhanced image. The model sees
either the masked or the enhanced image (``PreprocessConfig.model_input``), a choice recorded in
each model card. Training, evaluation, inference and the GUI preview all call :func:`preprocess`
with the card's :class:`PreprocessConfig`, so they cannot drift apart.

Channel order. The original code read images with ``cv2.imread`` (BGR) and converted them with
``COLOR_RGB2LAB``, i.e. it computed "LAB" of a red/blue-swapped image, and its mask thresholds
were tuned on those values. ALLSight decodes every file to RGB; ``lab_source="bgr_as_rgb"``
(the default) feeds the thresholds the same red/blue-swapped values the original did, so the
published thresholds select what they selected there. ``lab_source="rgb"`` converts the true
RGB image instead (what the thresholds' names suggest, but not what was tuned). See
docs/preprocessing.md for the measurements behind the choice.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import cv2
import numpy as np

from engine.core.errors import ConfigError
from engine.imaging.pixelstats import median_uint8, percentile_uint8

LabTriple = tuple[int, int, int]
#: What the network is fed (:attr:`PreprocessConfig.model_input`).
ModelInput = Literal["masked", "enhanced", "original"]


@dataclass(frozen=True)
class ColorRange:
    """An inclusive range in OpenCV 8-bit LAB (L, a, b each 0..255)."""

    name: str
    lower: LabTriple
    upper: LabTriple


ORIGINAL_COLOR_RANGES: tuple[ColorRange, ...] = (
    ColorRange("pink", (130, 70, 215), (230, 170, 255)),
    ColorRange("blue", (90, 120, 100), (180, 200, 160)),
    ColorRange("purple", (100, 50, 100), (200, 150, 200)),
)

STAGE_NAMES: tuple[str, ...] = ("original", "enhanced", "mask", "masked", "model_input")


@dataclass(frozen=True)
class PreprocessConfig:
    """Every preprocessing parameter. Stored verbatim in each model card."""

    image_size: int = 224
    #: "center": largest centred square, then resize. "resize": squash the whole image.
    crop: Literal["center", "resize"] = "center"
    #: CLAHE on the L channel; clip limit 0 disables contrast enhancement.
    clahe_clip_limit: float = 2.0
    clahe_tile_grid: int = 8
    #: Which pixels the LAB thresholds are applied to (see module docstring).
    lab_source: Literal["bgr_as_rgb", "rgb"] = "bgr_as_rgb"
    color_ranges: tuple[ColorRange, ...] = ORIGINAL_COLOR_RANGES
    #: Morphological closing (pixels, 0 = off) to fill small holes in the mask.
    mask_close_px: int = 0
    #: Per-field white balance before contrast enhancement: the background (the brightest 30 %
    #: of pixels) is scaled to a neutral grey, so the lamp, filter and camera white balance of an
    #: acquisition (which, in the training set, differ by class) stop reaching the network.
    white_balance: bool = False
    #: What the network is fed.
    model_input: ModelInput = "masked"
    #: Per-channel normalisation of the 0..1 RGB model input.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        for name in ("image_size", "clahe_tile_grid", "mask_close_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
        if not 16 <= int(self.image_size) <= 1024:
            raise ConfigError(f"image_size must be between 16 and 1024, got {self.image_size}")
        if self.crop not in ("center", "resize"):
            raise ConfigError(f"crop must be 'center' or 'resize', got {self.crop!r}")
        if self.clahe_clip_limit < 0:
            raise ConfigError("clahe_clip_limit must be >= 0")
        if not 1 <= int(self.clahe_tile_grid) <= 64:
            raise ConfigError("clahe_tile_grid must be between 1 and 64")
        if self.lab_source not in ("bgr_as_rgb", "rgb"):
            raise ConfigError(f"lab_source must be 'bgr_as_rgb' or 'rgb', got {self.lab_source!r}")
        if self.model_input not in ("masked", "enhanced", "original"):
            raise ConfigError(f"model_input must be masked/enhanced/original, got {self.model_input!r}")
        if self.mask_close_px < 0:
            raise ConfigError("mask_close_px must be >= 0")
        for rng in self.color_ranges:
            if len(rng.lower) != 3 or len(rng.upper) != 3:
                raise ConfigError(f"colour range {rng.name!r} needs three values (L, a, b) in lower and upper")
            for lo, hi in zip(rng.lower, rng.upper, strict=False):
                if not 0 <= lo <= hi <= 255:
                    raise ConfigError(f"colour range {rng.name!r} must satisfy 0 <= lower <= upper <= 255")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("mean and std need three values, std > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown preprocessing parameters: {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        if "color_ranges" in kwargs:
            kwargs["color_ranges"] = tuple(
                ColorRange(r["name"], tuple(r["lower"]), tuple(r["upper"]))
                if isinstance(r, Mapping) else r
                for r in kwargs["color_ranges"]
            )
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(float(v) for v in kwargs[key])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> PreprocessConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class PreprocessStages:
    """Every stage, each an (S, S, 3) uint8 RGB image except ``mask`` ((S, S) uint8, 0/255)."""

    original: np.ndarray
    enhanced: np.ndarray
    mask: np.ndarray
    masked: np.ndarray
    model_input: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in STAGE_NAMES}


def crop_and_resize(rgb: np.ndarray, size: int, crop: str = "center") -> np.ndarray:
    h, w = rgb.shape[:2]
    if crop == "center" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        rgb = rgb[top : top + side, left : left + side]
    if rgb.shape[0] != size or rgb.shape[1] != size:
        shrinking = rgb.shape[0] > size
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb)


#: The neutral background level :func:`balance_white` maps the field's background to.
WHITE_BALANCE_TARGET = 225.0
WHITE_BALANCE_SHARE = 0.30


def balance_white(rgb: np.ndarray) -> np.ndarray:
    """Scale R, G, B so the median of the brightest 30 % of pixels becomes neutral grey
    (:data:`WHITE_BALANCE_TARGET`); gains are limited to 0.5..2 so a dark or odd frame is not
    blown up."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # OpenCV's stubs type compare()'s src2 as an array only; it takes a scalar threshold as well.
    background = cv2.compare(gray, percentile_uint8(gray, 100 * (1 - WHITE_BALANCE_SHARE)),  # type: ignore[call-overload]
                             cv2.CMP_GE)
    channels = cv2.split(np.ascontiguousarray(rgb))
    gains = [float(np.clip(WHITE_BALANCE_TARGET / max(median_uint8(c, background), 1.0), 0.5, 2.0))
             for c in channels]
    # One lookup table per channel: the same rounding as a float multiply, at LUT speed.
    lut = np.stack([np.clip(np.arange(256) * g + 0.5, 0, 255) for g in gains], axis=-1).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(rgb), lut.reshape(256, 1, 3))


def enhance_contrast(rgb: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """CLAHE on the L channel of (true) LAB, so hue is untouched."""
    if clip_limit <= 0:
        return rgb.copy()
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid, tile_grid))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def color_mask(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Union of the configured LAB colour ranges, as a 0/255 uint8 mask."""
    source = rgb[..., ::-1] if config.lab_source == "bgr_as_rgb" else rgb
    lab = cv2.cvtColor(np.ascontiguousarray(source), cv2.COLOR_RGB2LAB)
    # np.ndarray, not the uint8 array np.zeros is typed as: OpenCV's stubs type inRange() and
    # morphologyEx() as returning any numeric array (they return uint8 here).
    mask: np.ndarray = np.zeros(rgb.shape[:2], np.uint8)
    for rng in config.color_ranges:
        mask |= cv2.inRange(lab, np.array(rng.lower, np.uint8), np.array(rng.upper, np.uint8))
    if config.mask_close_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.mask_close_px,) * 2)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, k)
    return mask


def preprocess(rgb: np.ndarray, config: PreprocessConfig) -> PreprocessStages:
    """Run every stage on an (H, W, 3) uint8 RGB image (as returned by ``load_image``)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(f"preprocess expects an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    original = crop_and_resize(rgb, config.image_size, config.crop)
    balanced = balance_white(original) if config.white_balance else original
    enhanced = enhance_contrast(balanced, config.clahe_clip_limit, config.clahe_tile_grid)
    mask = color_mask(enhanced, config)
    masked = cv2.bitwise_and(enhanced, enhanced, mask=mask)
    model_input = {"masked": masked, "enhanced": enhanced, "original": original}[config.model_input]
    return PreprocessStages(original, enhanced, mask, masked, model_input)


def model_input_only(rgb: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(original, model_input)`` computing only the stages the model input needs.

    The hot path of training and inference: with ``model_input="enhanced"`` the colour masks are
    not computed at all. Built from the same stage functions as :func:`preprocess`, so the
    result is identical (a test checks it).
    """
    if config.model_input == "masked":
        stages = preprocess(rgb, config)
        return stages.original, stages.model_input
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(f"preprocess expects an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    original = crop_and_resize(rgb, config.image_size, config.crop)
    if config.model_input == "original":
        return original, original
    balanced = balance_white(original) if config.white_balance else original
    return original, enhance_contrast(balanced, config.clahe_clip_limit, config.clahe_tile_grid)


def to_chw_float(images: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """(N, S, S, 3) or (S, S, 3) uint8 -> normalised float32 (N, 3, S, S) / (3, S, S)."""
    # Annotated: numpy's stubs type (floating / float32 array) as complex128.
    x: np.ndarray = images.astype(np.float32) / 255.0
    x = (x - np.array(config.mean, np.float32)) / np.array(config.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))
