"""The retraining wizard's Compare step: a candidate model against the current one on the same
images — the lab's held-out images and the reference set (the development test split where
the lab has it) — with the figures a lab scientist decides on: accuracy, per-class recall,
confusion matrices, calibration (ECE) and how many images each would flag for review; and the
candidate's regressions, named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.training.data import Sample

#: Points (percentage points) by which the candidate may trail before it is called a regression.
REGRESSION_TOLERANCE_PTS = 0.5


def _figures(loaded, raw: Sequence[np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    # torch only here: the wizard imports this module for REGRESSION_TOLERANCE_PTS and regressions()
    from engine.imaging.preprocess import crop_and_resize
    from engine.inference.predict import preprocess_batch, run_network
    from engine.inference.scoring import softmax
    from engine.training.metrics import classification_report

    card = loaded.card
    resized = np.stack([crop_and_resize(im, card.image_size, card.preprocess.crop) for im in raw])
    logits, _ = run_network(loaded.net, preprocess_batch(resized, card.preprocess), batch_size=128)
    probs = softmax(logits, card.temperature)
    report = classification_report(probs, labels, card.classes)
    report["flagged_fraction"] = float((probs.max(axis=1) < card.review_threshold).mean())
    report["recall"] = {c: m["recall"] for c, m in report["per_class"].items()}
    return report


def regressions(candidate: Mapping[str, Any], current: Mapping[str, Any],
                tolerance_pts: float = REGRESSION_TOLERANCE_PTS) -> list[str]:
    """What the candidate does worse than the current model on one set of images."""
    worse = []
    tol = tolerance_pts / 100
    if candidate["accuracy"] < current["accuracy"] - tol:
        worse.append(f"accuracy {candidate['accuracy'] * 100:.1f} % vs {current['accuracy'] * 100:.1f} %")
    for c, r in candidate["recall"].items():
        if current["per_class"][c]["support"] and r < current["recall"][c] - tol:
            worse.append(f"{c} recall {r * 100:.1f} % vs {current['recall'][c] * 100:.1f} %")
    if candidate["ece"] > current["ece"] + tol:
        worse.append(f"calibration error {candidate['ece']:.3f} vs {current['ece']:.3f}")
    if candidate["flagged_fraction"] > current["flagged_fraction"] + 0.05:
        worse.append(f"flags {candidate['flagged_fraction'] * 100:.0f} % of images vs "
                     f"{current['flagged_fraction'] * 100:.0f} %")
    return worse


def compare_models(candidate, current, parts: Mapping[str, Sequence[Sample]]) -> dict[str, Any]:
    """``{part: {"candidate": figures, "current": figures, "regressions": [...]}}`` for each
    non-empty named set of images (``lab_validation``, ``reference``); the models are
    :class:`~engine.models.checkpoint.LoadedModel`s; each image is decoded once."""
    from engine.io.images import load_image

    out: dict[str, Any] = {}
    for name, samples in parts.items():
        if not samples:
            continue
        raw = [load_image(s.path) for s in samples]
        labels = np.array([s.label for s in samples], np.int64)
        cand, cur = _figures(candidate, raw, labels), _figures(current, raw, labels)
        out[name] = {"candidate": cand, "current": cur, "regressions": regressions(cand, cur)}
    out["models"] = {role: {"id": m.card.id, "version": m.card.version, "sha256": m.card.weights_sha256}
                     for role, m in (("candidate", candidate), ("current", current))}
    return out


__all__ = ["REGRESSION_TOLERANCE_PTS", "compare_models", "regressions"]
