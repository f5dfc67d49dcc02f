"""INT8 with an fp32 check (engine.inference.cascade): which rows the check sends to fp32, and that
those rows carry fp32's outputs while the rest keep INT8's."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference.cascade import CascadeBackend, Fp32Check


def _probs(*rows):
    return np.array(rows, np.float64)


def test_a_small_margin_between_the_top_two_classes_goes_to_fp32():
    check = Fp32Check(margin=0.1, confidence_band=0.0, ood_band=0.0)
    probs = _probs([0.50, 0.45, 0.03, 0.02], [0.70, 0.20, 0.05, 0.05])
    assert check.needs_fp32(probs, review_threshold=0.0).tolist() == [True, False]


def test_a_confidence_near_the_review_threshold_goes_to_fp32_on_a_log_scale():
    check = Fp32Check(margin=0.0, confidence_band=0.3, ood_band=0.0)
    # log(1 - c) within 0.3 of log(1 - 0.98): c in about [0.973, 0.985]
    probs = _probs([0.975, 0.025, 0, 0], [0.984, 0.016, 0, 0], [0.990, 0.01, 0, 0], [0.960, 0.04, 0, 0],
                   [1.0, 0.0, 0, 0])
    assert check.needs_fp32(probs, review_threshold=0.98).tolist() == [True, True, False, False, False]


def test_a_score_near_the_detector_threshold_goes_to_fp32():
    check = Fp32Check(margin=0.0, confidence_band=0.0, ood_band=0.1)
    probs = _probs(*[[1.0, 0, 0, 0]] * 4)
    scores = np.array([1.05, 0.95, 1.5, 0.0])
    assert check.needs_fp32(probs, 0.5, scores, ood_threshold=1.0).tolist() == [True, True, False, False]
    assert not check.needs_fp32(probs, 0.5, scores, ood_threshold=None).any()  # no detector: no OOD band


def test_a_check_reads_and_writes_the_cards_entry():
    check = Fp32Check(0.05, 0.12, 0.105)
    assert Fp32Check.from_entry({"fp32_check": check.as_dict()}) == check


class _Fixed:
    """A backend that returns fixed logits per image (its first pixel's value picks the row)."""

    threads = 1
    has_class_maps = True

    def __init__(self, offset: float) -> None:
        self.offset, self.calls = offset, []

    def run(self, images):
        self.calls.append(len(images))
        key = images[:, 0, 0, 0].astype(np.float32)
        return np.stack([key + self.offset] * 4, 1), np.stack([key, key + self.offset], 1)

    def class_maps(self, images):
        return "fp32 maps", images


def test_the_rows_the_rule_picks_carry_fp32s_outputs_and_only_they_run_twice():
    int8, fp32 = _Fixed(0.5), _Fixed(0.0)
    images = np.zeros((5, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = [0, 1, 2, 3, 4]
    cascade = CascadeBackend(int8, fp32, lambda logits, feats: feats[:, 0] % 2 == 1)  # odd rows to fp32
    logits, features = cascade.run(images)
    assert logits[:, 0].tolist() == [0.5, 1.0, 2.5, 3.0, 4.5]
    assert features[:, 1].tolist() == [0.5, 1.0, 2.5, 3.0, 4.5]
    assert int8.calls == [5] and fp32.calls == [2]
    assert (cascade.images, cascade.images_checked) == (5, 2)


def test_nothing_runs_twice_when_int8_is_clear_everywhere():
    int8, fp32 = _Fixed(0.5), _Fixed(0.0)
    cascade = CascadeBackend(int8, fp32, lambda logits, feats: np.zeros(len(logits), bool))
    cascade.run(np.zeros((3, 2, 2, 3), np.uint8))
    assert fp32.calls == [] and cascade.images_checked == 0


def test_heat_maps_come_from_the_fp32_graph():
    cascade = CascadeBackend(_Fixed(0.5), _Fixed(0.0), lambda logits, feats: np.zeros(len(logits), bool))
    assert cascade.class_maps(np.zeros((1, 2, 2, 3), np.uint8))[0] == "fp32 maps"


@pytest.mark.parametrize("field", ["margin", "confidence_band", "ood_band"])
def test_every_band_is_used(field):
    """Each band alone sends a borderline row to fp32 (none is dead)."""
    values = {"margin": 0.0, "confidence_band": 0.0, "ood_band": 0.0, field: 0.5}
    check = Fp32Check(**values)
    probs = _probs([0.6, 0.4, 0, 0]) if field == "margin" else _probs([0.97, 0.03, 0, 0])
    scores = np.array([1.2]) if field == "ood_band" else np.array([100.0])
    threshold = 0.98 if field == "confidence_band" else 0.5
    assert check.needs_fp32(probs, threshold, scores, ood_threshold=1.0).tolist() == [True]
