"""The multi-layer out-of-distribution detector (engine.inference.ood), on synthetic features."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import ModelError
from engine.inference.ood import METHOD, OodDetector, feature_layers_of, fit_detector


def _features(rng, n, shift=0.0, dims=(3, 5)):
    labels = rng.integers(0, 2, n)
    blocks = [rng.normal(labels[:, None] * 4.0, 1.0, (n, d)) for d in dims]
    blocks[0] = blocks[0] + shift  # only the shallow layer moves
    return np.concatenate(blocks, axis=1), labels


def test_a_shift_seen_only_by_one_layer_is_flagged_and_clean_data_stays_at_the_quantile():
    rng = np.random.default_rng(0)
    train, ytr = _features(rng, 2000)
    val, _ = _features(rng, 2000)
    det = fit_detector(train, ytr, val, ["shallow", "deep"], [3, 5], 2, quantile=0.97)
    clean, _ = _features(rng, 4000)
    shifted, _ = _features(rng, 500, shift=-8.0)  # away from both class means
    _, clean_flags = det.flags(clean)
    _, shifted_flags = det.flags(shifted)
    assert 0.01 < clean_flags.mean() < 0.06
    assert shifted_flags.mean() > 0.99
    # the deep layer alone would not see it: its scores on shifted data look like clean data
    deep_only = det.layer_scores(shifted)[:, 1]
    assert np.median(deep_only) < np.median(det.layer_scores(clean)[:, 1]) * 1.5


def test_card_section_round_trips_and_wrong_widths_are_refused():
    rng = np.random.default_rng(1)
    train, ytr = _features(rng, 300)
    val, _ = _features(rng, 300)
    det = fit_detector(train, ytr, val, ["a", "b"], [3, 5], 2)
    section, tensors = det.card_section(0.975, 0.95)
    assert section["method"] == METHOD and section["feature_layers"] == ["a", "b"]
    again = OodDetector.from_card(section, tensors)
    np.testing.assert_allclose(again.score(val), det.score(val), rtol=1e-4)
    assert feature_layers_of(section, "x") == ("a", "b")
    with pytest.raises(ModelError, match="expects 8 features"):
        det.score(np.zeros((2, 7)))
    broken = dict(tensors)
    broken.pop("ood.b.precision")
    with pytest.raises(ModelError, match="lacks the OOD tensor"):
        OodDetector.from_card(section, broken)


def test_legacy_single_layer_cards_still_load():
    means, precision = np.zeros((4, 2)), np.eye(2)
    section = {"method": "mahalanobis", "feature_layer": "layer4", "threshold": 3.0}
    det = OodDetector.from_card(section, {"ood.means": means, "ood.precision": precision})
    scores, flagged = det.flags(np.array([[1.0, 1.0], [2.0, 0.0]]))
    np.testing.assert_allclose(scores, [2.0, 4.0])
    assert flagged.tolist() == [False, True]
    assert feature_layers_of(section, "fallback") == ("layer4",)
    assert OodDetector.from_card({}, {}) is None
