"""PreprocessConfig (frozen, validated, serialisable) and preprocess (stages, crop, colour masks,
the lab_source channel-order flag, model_input and CLAHE)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from engine.core.errors import AllSightError, ConfigError
from engine.imaging.preprocess import (
    ORIGINAL_COLOR_RANGES,
    STAGE_NAMES,
    ColorRange,
    PreprocessConfig,
    PreprocessStages,
    preprocess,
    to_chw_float,
)
from tests.conftest import synthetic_smear

WHITE = (255, 255, 255)


# ------------------------------------------------------------------------------------ config
def test_config_is_frozen():
    cfg = PreprocessConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.image_size = 64  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lab_source = "rgb"  # type: ignore[misc]
    assert cfg.image_size == 224


def test_config_defaults_are_the_original_research_values():
    cfg = PreprocessConfig()
    assert cfg.lab_source == "bgr_as_rgb"
    assert cfg.model_input == "masked"
    assert cfg.color_ranges == ORIGINAL_COLOR_RANGES
    assert [r.name for r in cfg.color_ranges] == ["pink", "blue", "purple"]


@pytest.mark.parametrize(
    "changes",
    [
        {"image_size": 8},
        {"image_size": 4096},
        {"image_size": 64.5},
        {"image_size": "224"},
        {"crop": "top-left"},
        {"clahe_clip_limit": -1.0},
        {"clahe_tile_grid": 0},
        {"clahe_tile_grid": 100},
        {"lab_source": "bgr"},
        {"model_input": "mask"},
        {"mask_close_px": -3},
        {"color_ranges": (ColorRange("x", (10, 10, 10), (5, 20, 20)),)},  # lower > upper
        {"color_ranges": (ColorRange("x", (0, 0, 0), (256, 20, 20)),)},  # over 255
        {"color_ranges": (ColorRange("x", (0, 0), (20, 20)),)},  # not L, a, b
        {"std": (0.2, 0.0, 0.2)},
        {"mean": (0.5, 0.5)},
    ],
)
def test_config_rejects_bad_values(changes):
    with pytest.raises(ConfigError) as info:
        PreprocessConfig(**changes)
    assert isinstance(info.value, AllSightError)
    assert str(info.value)  # a message for a person
    with pytest.raises(ConfigError):
        PreprocessConfig().replace(**changes)  # replace validates too


def test_config_round_trip_through_json():
    cfg = PreprocessConfig(
        image_size=96, crop="resize", clahe_clip_limit=3.5, clahe_tile_grid=4, lab_source="rgb",
        color_ranges=(ColorRange("violet", (10, 20, 30), (200, 210, 220)),
                      ColorRange("pink", (130, 70, 215), (230, 170, 255))),
        mask_close_px=3, model_input="enhanced", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
    )
    data = cfg.to_dict()
    assert data["color_ranges"][0] == {"name": "violet", "lower": (10, 20, 30), "upper": (200, 210, 220)}
    assert PreprocessConfig.from_dict(data) == cfg
    via_json = json.loads(json.dumps(data))  # tuples become lists in a model card
    back = PreprocessConfig.from_dict(via_json)
    assert back == cfg
    assert isinstance(back.color_ranges, tuple) and isinstance(back.color_ranges[0], ColorRange)
    assert back.color_ranges[0].lower == (10, 20, 30)
    assert hash(back) == hash(cfg)  # still hashable (tuples, not lists)


def test_config_default_round_trip():
    assert PreprocessConfig.from_dict(json.loads(json.dumps(PreprocessConfig().to_dict()))) == PreprocessConfig()


def test_from_dict_partial_uses_defaults():
    assert PreprocessConfig.from_dict({"image_size": 128}) == PreprocessConfig(image_size=128)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="bogus_param"):
        PreprocessConfig.from_dict({"image_size": 64, "bogus_param": 1})


def test_from_dict_validates_values():
    with pytest.raises(ConfigError):
        PreprocessConfig.from_dict({"lab_source": "xyz"})


# ----------------------------------------------------------------------------------- stages
def test_preprocess_returns_every_stage_with_shapes_and_dtypes():
    rgb = synthetic_smear(1, 96, seed=3)[:, :80]  # non-square input
    cfg = PreprocessConfig(image_size=48)
    stages = preprocess(rgb, cfg)
    assert isinstance(stages, PreprocessStages)
    d = stages.as_dict()
    assert tuple(d) == STAGE_NAMES == ("original", "enhanced", "mask", "masked", "model_input")
    for name in ("original", "enhanced", "masked", "model_input"):
        assert d[name].shape == (48, 48, 3), name
        assert d[name].dtype == np.uint8, name
    assert stages.mask.shape == (48, 48)
    assert stages.mask.dtype == np.uint8
    assert set(np.unique(stages.mask)) <= {0, 255}
    assert 0 < np.count_nonzero(stages.mask) < stages.mask.size  # blobs in, background out
    off = stages.mask == 0
    assert np.all(stages.masked[off] == 0)  # zero exactly where the mask is off...
    assert np.array_equal(stages.masked[~off], stages.enhanced[~off])  # ...enhanced elsewhere


def test_preprocess_does_not_modify_input():
    rgb = synthetic_smear(0, 64)
    before = rgb.copy()
    preprocess(rgb, PreprocessConfig(image_size=32))
    assert np.array_equal(rgb, before)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32)])
def test_preprocess_rejects_wrong_layout(bad):
    with pytest.raises(ConfigError):
        preprocess(bad, PreprocessConfig(image_size=16))


def _stripes(h: int, w: int, edge: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (0, 255, 0)
    if w > h:
        img[:, :edge] = (255, 0, 0)
        img[:, w - edge:] = (0, 0, 255)
    else:
        img[:edge] = (255, 0, 0)
        img[h - edge:] = (0, 0, 255)
    return img


@pytest.mark.parametrize("h,w", [(40, 80), (80, 40)])
def test_center_crop_of_non_square_image(h, w):
    # Wide/tall image: red and blue margins of 20 px outside the central 40x40 green square.
    rgb = _stripes(h, w, 20)
    cfg = PreprocessConfig(image_size=40, clahe_clip_limit=0)
    original = preprocess(rgb, cfg).original
    assert original.shape == (40, 40, 3)
    assert np.all(original == (0, 255, 0))  # exactly the centre square, no margins

    squashed = preprocess(rgb, cfg.replace(crop="resize")).original
    assert squashed.shape == (40, 40, 3)
    assert tuple(squashed[0, 0]) == (255, 0, 0)  # the whole image, margins squashed in
    assert tuple(squashed[-1, -1]) == (0, 0, 255)


def test_center_crop_then_resize():
    rgb = _stripes(120, 240, 60)
    original = preprocess(rgb, PreprocessConfig(image_size=32, clahe_clip_limit=0)).original
    assert original.shape == (32, 32, 3)
    assert np.all(original == (0, 255, 0))


# ---------------------------------------------------------------------------------- masks
def _lab_in(lab: np.ndarray, rng: ColorRange) -> np.ndarray:
    return np.all((lab >= rng.lower) & (lab <= rng.upper), axis=-1)


def _candidate_colours() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every RGB colour on a coarse grid, with its OpenCV LAB in both channel orders."""
    v = np.arange(0, 256, 8, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1).reshape(1, -1, 3)
    lab_true = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[0]
    # What the original code computed: the RGB2LAB conversion of BGR pixels.
    lab_swapped = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_RGB2LAB)[0]
    return rgb[0], lab_true, lab_swapped


def _most_central(colours: np.ndarray, lab: np.ndarray, rng: ColorRange) -> tuple[int, int, int]:
    centre = (np.array(rng.lower) + np.array(rng.upper)) / 2
    i = int(np.argmin(np.abs(lab.astype(float) - centre).sum(axis=1)))
    return tuple(int(c) for c in colours[i])


def _find_colour(in_swapped: bool) -> tuple[int, int, int]:
    """A colour inside 'purple' (and no other range) in one channel order, and outside every range
    in the other order."""
    purple = next(r for r in ORIGINAL_COLOR_RANGES if r.name == "purple")
    rest = [r for r in ORIGINAL_COLOR_RANGES if r.name != "purple"]
    colours, lab_true, lab_swapped = _candidate_colours()
    inside, other = (lab_swapped, lab_true) if in_swapped else (lab_true, lab_swapped)
    ok = (_lab_in(inside, purple)
          & ~np.any([_lab_in(inside, r) for r in rest], axis=0)
          & ~np.any([_lab_in(other, r) for r in ORIGINAL_COLOR_RANGES], axis=0))
    assert ok.any(), "no colour separates the two channel orders"
    return _most_central(colours[ok], inside[ok], purple)


def _blob_on_white(colour, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((size, size, 3), WHITE, np.uint8)
    where = np.zeros((size, size), bool)
    where[16:40, 20:48] = True
    img[where] = colour
    return img, where


def test_purple_colour_is_masked_on_white_background():
    colour = _find_colour(in_swapped=True)
    img, where = _blob_on_white(colour)
    cfg = PreprocessConfig(image_size=64, clahe_clip_limit=0)  # exact pixels: no CLAHE, no resize
    stages = preprocess(img, cfg)
    assert np.all(stages.mask[where] == 255), colour
    assert np.all(stages.mask[~where] == 0)  # white background is never cell
    assert np.all(stages.masked[~where] == 0)
    assert np.all(stages.masked[where] == colour)


def test_only_purple_range_alone_selects_it():
    colour = _find_colour(in_swapped=True)
    img, where = _blob_on_white(colour)
    purple_only = tuple(r for r in ORIGINAL_COLOR_RANGES if r.name == "purple")
    others = tuple(r for r in ORIGINAL_COLOR_RANGES if r.name != "purple")
    base = PreprocessConfig(image_size=64, clahe_clip_limit=0)
    assert np.array_equal(preprocess(img, base.replace(color_ranges=purple_only)).mask == 255, where)
    assert not preprocess(img, base.replace(color_ranges=others)).mask.any()
    assert not preprocess(img, base.replace(color_ranges=())).mask.any()  # no ranges: empty mask


@pytest.mark.parametrize("in_swapped", [True, False])
def test_lab_source_flag_changes_the_mask(in_swapped):
    colour = _find_colour(in_swapped=in_swapped)
    img, where = _blob_on_white(colour)
    base = PreprocessConfig(image_size=64, clahe_clip_limit=0)
    swapped_mask = preprocess(img, base.replace(lab_source="bgr_as_rgb")).mask
    true_mask = preprocess(img, base.replace(lab_source="rgb")).mask
    selected, rejected = (swapped_mask, true_mask) if in_swapped else (true_mask, swapped_mask)
    assert np.all(selected[where] == 255), colour
    assert not rejected.any(), colour


def test_mask_close_fills_small_holes():
    colour = _find_colour(in_swapped=True)
    img, where = _blob_on_white(colour)
    assert where[28, 34]
    img[28, 34] = WHITE  # a one-pixel hole inside the blob
    base = PreprocessConfig(image_size=64, clahe_clip_limit=0)
    assert preprocess(img, base).mask[28, 34] == 0
    assert preprocess(img, base.replace(mask_close_px=5)).mask[28, 34] == 255


def test_mask_uses_the_enhanced_image_and_clahe_keeps_hue():
    rgb = synthetic_smear(2, 64, seed=1)
    stages = preprocess(rgb, PreprocessConfig(image_size=64))
    assert not np.array_equal(stages.enhanced, stages.original)  # CLAHE did something
    # CLAHE works on L only: a and b stay (nearly) where they were
    lab_o = cv2.cvtColor(stages.original, cv2.COLOR_RGB2LAB).astype(int)
    lab_e = cv2.cvtColor(stages.enhanced, cv2.COLOR_RGB2LAB).astype(int)
    assert np.abs(lab_o[..., 1:] - lab_e[..., 1:]).mean() < 3


# ------------------------------------------------------------------------ model input & CLAHE
@pytest.mark.parametrize("choice", ["masked", "enhanced", "original"])
def test_model_input_follows_config(choice):
    rgb = synthetic_smear(3, 64, seed=2)
    stages = preprocess(rgb, PreprocessConfig(image_size=64, model_input=choice))
    # the three candidates really differ, so picking the wrong one shows
    assert not np.array_equal(stages.masked, stages.enhanced)
    assert not np.array_equal(stages.enhanced, stages.original)
    assert np.array_equal(stages.model_input, getattr(stages, choice))
    for other in {"masked", "enhanced", "original"} - {choice}:
        assert not np.array_equal(stages.model_input, getattr(stages, other)), other


def test_clahe_zero_leaves_enhanced_equal_to_original():
    rgb = synthetic_smear(1, 80, seed=5)
    stages = preprocess(rgb, PreprocessConfig(image_size=64, clahe_clip_limit=0))
    assert np.array_equal(stages.enhanced, stages.original)
    assert stages.enhanced is not stages.original  # a copy, safe to change


def test_preprocess_is_deterministic():
    rgb = synthetic_smear(0, 64, seed=9)
    a = preprocess(rgb, PreprocessConfig(image_size=32)).as_dict()
    b = preprocess(rgb, PreprocessConfig(image_size=32)).as_dict()
    assert all(np.array_equal(a[k], b[k]) for k in STAGE_NAMES)


def test_to_chw_float_normalises():
    cfg = PreprocessConfig(image_size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 255
    x = to_chw_float(img, cfg)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    assert np.allclose(x[0], 1.0) and np.allclose(x[1], -2.0) and np.allclose(x[2], -1.0)
    assert to_chw_float(np.stack([img, img]), cfg).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("model_input", ["masked", "enhanced", "original"])
def test_fast_path_gives_exactly_the_full_pipelines_model_input(model_input):
    from engine.imaging.preprocess import model_input_only
    from tests.conftest import synthetic_smear

    config = PreprocessConfig(image_size=48, model_input=model_input)
    rgb = synthetic_smear(2, 80, 3)[:, :70]
    full = preprocess(rgb, config)
    original, fast = model_input_only(rgb, config)
    assert np.array_equal(original, full.original) and np.array_equal(fast, full.model_input)


# ------------------------------------------------------------------------------ white balance
def test_white_balance_makes_a_tinted_background_neutral_and_is_off_by_default():
    from engine.imaging.preprocess import (
        WHITE_BALANCE_TARGET,
        PreprocessConfig,
        balance_white,
        model_input_only,
    )

    img = np.full((64, 64, 3), (240, 235, 190), np.uint8)  # yellow-green background
    img[20:40, 20:40] = (120, 60, 170)
    balanced = balance_white(img)
    bg = balanced[5, 5].astype(float)
    assert np.allclose(bg, WHITE_BALANCE_TARGET, atol=2)
    assert balanced[30, 30, 2] > balanced[30, 30, 0]  # the cell stays violet
    plain = PreprocessConfig(image_size=64, model_input="enhanced", clahe_clip_limit=0)
    assert not plain.white_balance
    assert np.array_equal(model_input_only(img, plain)[1], img)
    wb = plain.replace(white_balance=True)
    assert np.array_equal(model_input_only(img, wb)[1], balanced)
    assert PreprocessConfig.from_dict(wb.to_dict()) == wb


def test_white_balance_limits_its_gains_on_a_dark_frame():
    from engine.imaging.preprocess import balance_white

    dark = np.full((32, 32, 3), (20, 10, 10), np.uint8)
    assert balance_white(dark).max() <= 40  # at most a gain of 2
