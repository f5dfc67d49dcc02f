"""Finishing a trained network: calibration, review threshold, OOD detector and test figures.

One function, :func:`finish`, used by training (:func:`engine.training.train.train`) and by re-fitting a
trained model's detector (:mod:`engine.training.refit`), so a shipped model's card always comes from the
same code whichever path made it. Training images fit the detector's Gaussians; validation
images set the temperature, the review threshold and the detector's scales and threshold; test
images are only measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from engine import CLASS_IDS
from engine.imaging.preprocess import PreprocessConfig
from engine.inference.ood import OodDetector, fit_detector
from engine.inference.predict import (
    fit_temperature,
    preprocess_batch,
    review_threshold,
    run_network,
    softmax,
)
from engine.models.registry import get_spec
from engine.training.metrics import classification_report

#: The validation share the detector's per-layer scores are scaled to (see engine.inference.ood).
BLOCK_QUANTILE = 0.95


@dataclass(frozen=True)
class Finished:
    temperature: float
    review_threshold: float
    detector: OodDetector
    ood_section: dict[str, Any]
    ood_tensors: dict[str, np.ndarray]
    report: dict[str, Any]


def finish(net: nn.Module, arch: str, pp: PreprocessConfig, *, train_imgs: np.ndarray, train_y: np.ndarray,
           val_imgs: np.ndarray, val_y: np.ndarray, test_imgs: np.ndarray, test_y: np.ndarray,
           review_precision: float = 0.995, ood_quantile: float = 0.975) -> Finished:
    """Calibrate ``net`` (eval mode) and measure it; images are resized uint8 originals."""
    net.eval()
    spec = get_spec(arch)
    names = list(spec.ood_feature_layers)
    layers = [net.get_submodule(n) for n in names]

    val_logits, val_feats = run_network(net, preprocess_batch(val_imgs, pp), batch_size=128, feature_layer=layers)
    temperature = fit_temperature(val_logits, val_y)
    threshold = review_threshold(softmax(val_logits, temperature), val_y, review_precision)

    # One forward pass per batch of a single layer tells each layer's width.
    dims: list[int] = []
    for m in layers:
        _, feats = run_network(net, preprocess_batch(val_imgs[:2], pp), feature_layer=m)
        assert feats is not None  # features asked for; the validation split is never empty
        dims.append(int(feats.shape[1]))
    train_x = preprocess_batch(train_imgs, pp)
    _, train_feats = run_network(net, train_x, batch_size=128, feature_layer=layers)
    del train_x
    # Features were asked for, and neither split is empty (train and refit build them).
    assert train_feats is not None and val_feats is not None
    detector = fit_detector(train_feats, train_y, val_feats, names, dims, len(CLASS_IDS),
                            quantile=ood_quantile, block_quantile=BLOCK_QUANTILE)
    section, tensors = detector.card_section(ood_quantile, BLOCK_QUANTILE)
    section["feature_layer"] = spec.feature_layer  # Grad-CAM's layer, as the registry names it

    test_logits, test_feats = run_network(net, preprocess_batch(test_imgs, pp), batch_size=128,
                                          feature_layer=layers) if len(test_imgs) else (
        np.zeros((0, len(CLASS_IDS)), np.float32), np.zeros((0, sum(dims)), np.float32))
    assert test_feats is not None  # features asked for on a non-empty split, or the zeros above
    test_probs = softmax(test_logits, temperature)
    report = classification_report(test_probs, test_y, CLASS_IDS)
    _, test_ood = detector.flags(test_feats)
    flagged = (test_probs.max(1) < threshold) | test_ood
    report["needs_review_fraction"] = float(flagged.mean()) if len(flagged) else 0.0
    report["ood_fraction"] = float(test_ood.mean()) if len(test_ood) else 0.0
    unflagged = ~flagged
    report["unflagged_accuracy"] = (float((test_probs.argmax(1)[unflagged] == test_y[unflagged]).mean())
                                    if unflagged.any() else None)
    return Finished(temperature, threshold, detector, section, tensors, report)


__all__ = ["BLOCK_QUANTILE", "Finished", "finish"]
