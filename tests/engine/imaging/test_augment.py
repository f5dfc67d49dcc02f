"""Training augmentation and the robustness shifts: shapes, determinism, and that each
perturbation does what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.augment import ROBUSTNESS_SHIFTS, AugmentConfig, augment, color_cast, zoom_out
from tests.conftest import synthetic_smear


@pytest.mark.parametrize("preset", ["standard", "microscope", "none"])
def test_augment_keeps_shape_and_is_deterministic_for_a_seed(preset):
    img = synthetic_smear(2, 64, 1)
    cfg = AugmentConfig.preset(preset)
    a = [augment(img, np.random.default_rng(7), cfg) for _ in range(2)]
    assert a[0].shape == img.shape and a[0].dtype == np.uint8
    assert np.array_equal(a[0], a[1])
    if preset == "none":
        assert np.array_equal(a[0], img)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation preset 'strong'"):
        AugmentConfig.preset("strong")


def test_color_cast_scales_each_channel():
    img = np.full((8, 8, 3), 100, np.uint8)
    out = color_cast(img, (1.1, 1.0, 0.9))
    assert out[0, 0].tolist() == [110, 100, 90]
    assert color_cast(np.full((2, 2, 3), 250, np.uint8), (1.2, 1.2, 1.2)).max() == 255  # saturates


def test_zoom_out_shrinks_the_content():
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 16:48] = 255  # a 32-px square in the middle
    out = zoom_out(img, 0.5)
    assert out.shape == img.shape
    row = out[32, :, 0]
    assert (row[24:40] == 255).all()  # the square is now 16 px wide, still in the middle
    assert row[22] == 0 and row[41] == 0  # (the border is a reflection: copies lie further out)


def test_microscope_preset_adds_casts_and_lower_magnification():
    standard, microscope = AugmentConfig.preset("standard"), AugmentConfig.preset("microscope")
    assert standard.p_color_cast == 0 and standard.p_zoom_out == 0  # the first recipe, unchanged
    assert microscope.p_color_cast > 0 and microscope.p_zoom_out > 0
    img = synthetic_smear(1, 64, 3)
    differs = sum(not np.array_equal(augment(img, np.random.default_rng(s), standard),
                                     augment(img, np.random.default_rng(s), microscope)) for s in range(20))
    assert differs >= 5


def test_robustness_shifts_keep_the_image_shape():
    img = synthetic_smear(0, 48, 2)
    for name, shift in ROBUSTNESS_SHIFTS.items():
        out = shift(img)
        assert out.shape == img.shape and out.dtype == np.uint8, name
    assert np.array_equal(ROBUSTNESS_SHIFTS["clean"](img), img)


# ---------------------------------------------------------------- background swap in training
def test_cell_preset_swaps_backgrounds_and_keeps_the_cells():
    import cv2

    from engine.imaging.augment import AugmentConfig, augment
    from engine.imaging.background_swap import BackgroundBank

    def field(tint):
        img = np.full((128, 128, 3), tint, np.uint8)
        cv2.circle(img, (64, 64), 12, (120, 60, 170), -1)
        return img

    a, b = field((238, 240, 205)), field((215, 220, 245))
    bank = BackgroundBank(np.stack([a, b]))
    swapped = bank.swap(0, a, np.random.default_rng(0))
    assert np.abs(swapped[64, 64].astype(int) - a[64, 64]).max() <= 1  # A's cell
    assert np.abs(swapped[5, 5].astype(int) - b[5, 5]).max() <= 3  # B's background
    cfg = AugmentConfig.preset("cell")
    assert cfg.p_background_swap > 0.5 and cfg.hue_degrees >= 18
    rng = np.random.default_rng(1)
    outs = [augment(a, rng, cfg, (bank, 0)) for _ in range(20)]
    assert all(o.shape == a.shape and o.dtype == np.uint8 for o in outs)
    assert any(np.abs(o[5, 5].astype(int) - a[5, 5]).max() > 10 for o in outs)


def test_standard_preset_is_unchanged_by_the_new_fields():
    from engine.imaging.augment import AugmentConfig

    std = AugmentConfig.preset("standard")
    assert std.p_background_swap == 0 and std.contrast_pivot == 0 and std.brightness_range == (1.0, 1.0)
