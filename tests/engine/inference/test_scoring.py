"""The NumPy scoring used by every runtime."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference.scoring import mahalanobis_score, softmax


def test_mahalanobis_score_is_the_minimum_squared_distance_over_classes():
    rng = np.random.default_rng(0)
    d, k = 16, 4
    a = rng.normal(size=(d, d))
    precision = a @ a.T + d * np.eye(d)  # symmetric positive definite
    means = rng.normal(size=(k, d))
    feats = np.vstack([rng.normal(size=(7, d)), means[2]])
    brute = np.array([min((f - m) @ precision @ (f - m) for m in means) for f in feats])
    got = mahalanobis_score(feats, means, precision)
    np.testing.assert_allclose(got, brute, rtol=1e-9, atol=1e-9)
    assert got[-1] == pytest.approx(0.0, abs=1e-9)  # a class mean itself is at distance 0
    assert mahalanobis_score(np.zeros((0, d)), means, precision).shape == (0,)


def test_softmax_temperature_sharpens_and_flattens():
    logits = np.array([[2.0, 1.0, 0.0, -1.0]])
    p1, hot, cold = softmax(logits), softmax(logits, 0.5), softmax(logits, 4.0)
    for p in (p1, hot, cold):
        assert p.sum() == pytest.approx(1.0) and p.argmax() == 0
    assert hot.max() > p1.max() > cold.max()
