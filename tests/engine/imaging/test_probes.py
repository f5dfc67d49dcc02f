"""Shortcut probes on synthetic fields: a cell-free field has no white cell left, a background swap
carries A's cell and B's background, every strong shift changes the image, bad input is refused.

Only synthetic images: a tinted background, pale red-cell discs and violet white-cell discs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.imaging.cells import (
    DEFAULT_CELL_DETECTOR,
    has_white_cell,
    violet_score,
    white_cell_mask,
)
from engine.imaging.probes import (
    STRONG_SHIFTS,
    background_swap,
    cell_free,
    paint_out_mask,
    swap_alpha,
)

PINK_BG = (235, 225, 235)
GREEN_BG = (215, 232, 195)  # a yellow-green lamp: B's tint, clearly unlike A's
RBC = (200, 170, 190)
WBC = (120, 60, 170)


def field(background=PINK_BG, cells=((70, 80, 22),), size: int = 224, seed: int = 0,
          noise: float = 2.0) -> np.ndarray:
    """A smear-like field: ``background`` tint, red-cell discs, white-cell discs at ``cells``
    ((x, y, radius) at 224 px, scaled with ``size``), a little Gaussian noise."""
    s = size / 224
    img = np.full((size, size, 3), background, np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(14):
        x, y = (int(v) for v in rng.integers(10, 214, 2))
        if all(np.hypot(x - cx, y - cy) > r + 18 for cx, cy, r in cells):
            cv2.circle(img, (int(x * s), int(y * s)), int(12 * s), RBC, -1, cv2.LINE_AA)
    for cx, cy, r in cells:
        cv2.circle(img, (int(cx * s), int(cy * s)), int(r * s), WBC, -1, cv2.LINE_AA)
    return np.clip(img.astype(np.float64) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def disc(size: int, x: float, y: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(xx - x, yy - y) <= r


def test_synthetic_field_has_a_detected_white_cell():
    img = field()
    assert has_white_cell(img)  # otherwise the tests below would prove nothing
    assert white_cell_mask(img)[disc(224, 70, 80, 15)].all()


def test_paint_out_mask_is_more_generous_than_the_detector():
    img = field()
    paint, detected = paint_out_mask(img) > 0, white_cell_mask(img) > 0
    assert paint.dtype == bool and paint.shape == img.shape[:2]
    assert paint[detected].all() and paint.sum() > detected.sum()
    assert set(np.unique(paint_out_mask(img))) <= {0, 255}
    assert paint[disc(224, 70, 80, 25)].all()  # the dilation reaches past the cell's edge


def test_paint_out_dilation_scales_with_the_image():
    # no noise: a stray noisy pixel above the threshold grows into a whole dilation disc
    small, large = field(size=224, noise=0), field(size=448, noise=0)
    ratio = (paint_out_mask(large) > 0).sum() / (paint_out_mask(small) > 0).sum()
    assert 3.4 < ratio < 4.6  # area grows with the square of the side


@pytest.mark.parametrize("cells", [((70, 80, 22),), ((60, 60, 20), (160, 150, 26))])
def test_cell_free_field_has_no_white_cell_left(cells):
    img = field(cells=cells)
    free = cell_free(img)
    assert free.shape == img.shape and free.dtype == np.uint8
    assert not has_white_cell(free)
    score = violet_score(free)
    for x, y, r in cells:
        inside = disc(224, x, y, r)
        assert score[inside].max() < DEFAULT_CELL_DETECTOR.min_score
        # painted with the field's background, not left violet
        assert np.abs(free[inside].astype(int).mean(axis=0) - PINK_BG).max() < 25


def test_cell_free_leaves_the_far_background_alone():
    img = field()
    far = ~(paint_out_mask(img) > 0)
    assert np.array_equal(cell_free(img)[far], img[far])


def test_cell_free_of_a_field_without_white_cells_is_unchanged():
    img = field(cells=(), noise=0)  # noise-free: no stray pixel reaches the paint-out score
    assert not has_white_cell(img) and not paint_out_mask(img).any()
    assert np.array_equal(cell_free(img), img)


def test_background_swap_keeps_a_cells_and_b_background():
    a = field(PINK_BG, cells=((70, 80, 22),), seed=1)
    b = field(GREEN_BG, cells=((160, 150, 24),), seed=2)
    swap = background_swap(a, b)
    assert swap.shape == a.shape and swap.dtype == np.uint8
    inside_a = disc(224, 70, 80, 18)
    assert np.abs(swap[inside_a].astype(int) - a[inside_a]).max() <= 1  # A's cell, unchanged
    # far from A's cell and off every red cell: B's background tint
    far = ~disc(224, 70, 80, 40) & (np.abs(b.astype(int) - GREEN_BG).max(axis=2) < 10)
    far &= np.abs(a.astype(int) - PINK_BG).max(axis=2) < 10
    assert far.sum() > 5000
    # the tints differ, so a swap that kept A's background would fail the next check
    assert np.abs(a[far].astype(int).mean(axis=0) - GREEN_BG).max() > 15
    assert np.abs(swap[far].astype(int).mean(axis=0) - GREEN_BG).max() < 4
    assert np.abs(swap[far].astype(int) - cell_free(b)[far]).max() <= 1
    # B's own white cell is gone, A's is the only one
    assert violet_score(swap)[disc(224, 160, 150, 20)].max() < DEFAULT_CELL_DETECTOR.min_score
    assert has_white_cell(swap)


def test_swap_alpha_is_opaque_on_the_cell_and_feathered_at_its_edge():
    a = field()
    alpha = swap_alpha(a)
    assert alpha.dtype == np.float32 and alpha.min() >= 0 and alpha.max() <= 1
    assert (alpha[white_cell_mask(a) > 0] == 1).all()
    edge = (alpha > 0.02) & (alpha < 0.98)
    assert edge.sum() > 50  # a soft edge, not a hard cut
    assert (alpha[~disc(224, 70, 80, 40)] == 0).all()


def test_background_swap_accepts_a_precomputed_free_background_and_resizes_it():
    a = field(PINK_BG, seed=1)
    b = field(GREEN_BG, cells=((100, 100, 24),), size=320, seed=2)
    free_b = cell_free(b)
    via_free = background_swap(a, b, background_free=free_b)
    assert via_free.shape == a.shape
    assert np.array_equal(via_free, background_swap(a, b))


def test_background_swap_without_cells_in_a_is_the_free_background():
    a = field(cells=(), seed=1)
    b = field(GREEN_BG, seed=2)
    assert np.array_equal(background_swap(a, b), cell_free(b))


def test_strong_shifts_are_the_agreed_set():
    assert set(STRONG_SHIFTS) == {
        "clean", "hue+18deg", "hue-18deg", "brightness_x1.3", "brightness_x0.7", "contrast_x0.7",
        "gamma_1.3", "saturation_x0.7", "cast_warm", "cast_cool", "blur_sigma1.5", "jpeg_q25",
        "half_resolution"}


@pytest.mark.parametrize("name", sorted(STRONG_SHIFTS))
def test_each_strong_shift_keeps_shape_and_changes_the_image(name):
    img = field()
    out = STRONG_SHIFTS[name](img)
    assert out.shape == img.shape and out.dtype == np.uint8
    change = np.abs(out.astype(np.int16) - img).mean()
    if name == "clean":
        assert np.array_equal(out, img) and out is not img
    else:
        assert change > 1.0, f"{name} barely changed the image (mean |diff| {change:.2f})"


def test_strong_shifts_move_in_the_named_direction():
    img = field()
    mean = img.reshape(-1, 3).mean(axis=0)
    assert STRONG_SHIFTS["brightness_x1.3"](img).mean() > img.mean() + 5
    assert STRONG_SHIFTS["brightness_x0.7"](img).mean() < img.mean() - 30
    assert STRONG_SHIFTS["contrast_x0.7"](img).std() < img.std() * 0.75
    warm = STRONG_SHIFTS["cast_warm"](img).reshape(-1, 3).mean(axis=0)
    cool = STRONG_SHIFTS["cast_cool"](img).reshape(-1, 3).mean(axis=0)
    assert warm[2] < mean[2] - 20 and cool[2] > mean[2] + 10 and cool[0] < mean[0] - 15
    def saturation(im: np.ndarray) -> float:
        return float(cv2.cvtColor(im, cv2.COLOR_RGB2HSV)[..., 1].mean())

    assert saturation(STRONG_SHIFTS["saturation_x0.7"](img)) < saturation(img) * 0.8


BAD_INPUTS = [
    (np.zeros((32, 32, 3), np.float32), "uint8"),
    (np.zeros((32, 32), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((32, 32, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((4, 4, 3), np.uint8), "too small"),
    ([[0, 0, 0]], "numpy array"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_INPUTS)
@pytest.mark.parametrize("builder", ["paint_out_mask", "cell_free", "swap_alpha", "swap_a", "swap_b",
                                     "shift"])
def test_builders_refuse_wrong_shapes_and_dtypes(builder, bad, message):
    good = field()
    call = {
        "paint_out_mask": lambda: paint_out_mask(bad),
        "cell_free": lambda: cell_free(bad),
        "swap_alpha": lambda: swap_alpha(bad),
        "swap_a": lambda: background_swap(bad, good),
        "swap_b": lambda: background_swap(good, bad),
        "shift": lambda: STRONG_SHIFTS["hue+18deg"](bad),
    }[builder]
    with pytest.raises(ValueError, match=message):
        call()
