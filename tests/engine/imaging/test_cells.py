"""The white-cell detector (engine.imaging.cells) and the no-white-cell flag, on synthetic fields."""

from __future__ import annotations

import cv2
import numpy as np

from engine.core.flags import FlagReason
from engine.imaging.cells import find_white_cells, has_white_cell, violet_score, white_cell_mask
from engine.inference.classifier import Classifier, image_level_flags
from tests.conftest import save_tiny_model, synthetic_field_without_white_cell, synthetic_smear


def _field(tint=(236, 226, 232), cells=((60, 60, 14),), cell_rgb=(120, 60, 170), size=224, rbc_rgb=(200, 170, 190)):
    rng = np.random.default_rng(0)
    img = np.clip(np.full((size, size, 3), tint, np.int16) + rng.integers(-6, 6, (size, size, 3)), 0, 255)
    img = img.astype(np.uint8)
    for k in range(25):  # pale red cells
        cv2.circle(img, (int(15 + (k * 37) % (size - 30)), int(15 + (k * 53) % (size - 30))), 9, rbc_rgb, -1)
    for x, y, r in cells:
        cv2.circle(img, (x, y), r, cell_rgb, -1)
    return img


def test_a_violet_cell_is_found_where_it_is_and_red_cells_are_not():
    img = _field(cells=((60, 70, 14), (170, 160, 12)))
    mask = white_cell_mask(img)
    assert mask[70, 60] == 255 and mask[160, 170] == 255
    assert mask.mean() / 255 < 0.05  # the pale red cells and the background stay out
    boxes = find_white_cells(img)
    assert len(boxes) == 2
    big = boxes[0]
    assert abs(big.x + big.width / 2 - 60) < 6 and abs(big.y + big.height / 2 - 70) < 6


def test_a_field_with_only_red_cells_or_only_background_has_no_white_cell():
    assert not has_white_cell(_field(cells=()))
    assert not has_white_cell(np.full((128, 128, 3), (230, 225, 235), np.uint8))
    assert not has_white_cell(synthetic_field_without_white_cell(128))


def test_detection_follows_the_field_background_not_its_tint():
    # the same cell on a yellow-green and on a blue-lilac background (two acquisitions)
    for tint in ((238, 240, 205), (215, 220, 245)):
        assert has_white_cell(_field(tint=tint)), tint


def test_a_platelet_sized_speck_is_not_a_cell():
    assert not has_white_cell(_field(cells=((100, 100, 2),)))


def test_violet_score_is_relative_to_the_background():
    img = _field(cells=((60, 60, 14),))
    score = violet_score(img)
    assert score[60, 60] > 50 > abs(float(np.median(score)))


def test_image_level_flags_mark_a_field_without_white_cell_but_not_a_blank_one_twice():
    assert FlagReason.NO_WHITE_CELL in image_level_flags(synthetic_field_without_white_cell(128))
    assert image_level_flags(np.full((128, 128, 3), 200, np.uint8)) == [FlagReason.BLANK, FlagReason.GRAYSCALE]
    assert FlagReason.NO_WHITE_CELL not in image_level_flags(synthetic_smear(1, 128))


def test_classifier_flags_a_cell_free_field_out_of_distribution_and_for_review(tmp_path):
    clf = Classifier(save_tiny_model(tmp_path / "m").weights_path, device="cpu")
    free, normal = clf.classify_arrays([synthetic_field_without_white_cell(64), synthetic_smear(2, 64)])
    assert FlagReason.NO_WHITE_CELL in free.flags and free.out_of_distribution and free.needs_review
    assert "no_white_cell" in free.csv_row()["flags"]
    assert FlagReason.NO_WHITE_CELL not in normal.flags
