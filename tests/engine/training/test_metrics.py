import numpy as np
import pytest

from engine.inference.predict import fit_temperature, review_threshold, softmax
from engine.training.metrics import classification_report, expected_calibration_error, format_report

CLASSES = ("Benign", "Early", "Pre", "Pro")


def test_report_counts_and_per_class_values():
    y = np.array([0, 0, 1, 1, 2, 3])
    pred = np.array([0, 1, 1, 1, 2, 3])
    probs = np.eye(4)[pred] * 0.97 + 0.01
    r = classification_report(probs, y, CLASSES)
    assert r["n"] == 6 and r["accuracy"] == pytest.approx(5 / 6)
    assert r["confusion_matrix"][0] == [1, 1, 0, 0]
    assert r["per_class"]["Early"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["Benign"]["recall"] == pytest.approx(0.5)
    assert r["per_class"]["Pro"]["support"] == 1
    assert "accuracy 83.33 %" in format_report(r)


def test_ece_is_zero_for_perfectly_calibrated_and_large_for_overconfident():
    y = np.array([0, 1] * 50)
    assert expected_calibration_error(np.eye(2)[y], y) == pytest.approx(0.0)
    wrong = np.eye(2)[1 - y]
    assert expected_calibration_error(wrong, y) == pytest.approx(1.0)


def test_temperature_scaling_softens_overconfident_logits():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), y] += 2.0
    overconfident = logits * 5
    t = fit_temperature(overconfident, y)
    assert t > 2.0
    before = expected_calibration_error(softmax(overconfident), y)
    after = expected_calibration_error(softmax(overconfident, t), y)
    assert after < before


def test_review_threshold_meets_the_target_on_unflagged_images():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 1000)
    conf = rng.uniform(0.3, 1.0, 1000)
    correct = rng.uniform(size=1000) < conf  # higher confidence, more often right
    pred = np.where(correct, y, (y + 1) % 4)
    probs = np.full((1000, 4), 0.0)
    probs[np.arange(1000), pred] = conf
    t = review_threshold(probs, y, 0.99)
    kept = conf >= t
    assert 0 < kept.sum() < 1000
    assert (pred[kept] == y[kept]).mean() >= 0.99
