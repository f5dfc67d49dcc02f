"""The retraining wizard's Compare step: a candidate model against the current one on the same
images — the lab's held-out images and the reference set (the development test split where
the lab has it) — with the figures a lab scientist decides on: accuracy, per-class recall,
confusion matrices, calibration (ECE), how many images each would flag for review and, on the
reference set, how often the call follows the white cell when it is pasted onto another class's
background (a fine-tune that relearns the background shortcut looks *better* on clean
accuracy: measured, docs/results.md "A lab's fine-tune"); and the candidate's regressions, named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.training.data import Sample

#: Points (percentage points) by which the candidate may trail before it is called a regression.
REGRESSION_TOLERANCE_PTS = 0.5
#: Background-swap pairs built from the reference set (each: one image's white cells on the
#: painted-out field of an image of another class; the truth is the first image's class).
SWAP_PAIRS = 200


def swap_pairs(samples: Sequence[Sample], n: int = SWAP_PAIRS, seed: int = 0) -> list[tuple[int, int]]:
    """Seeded (cells, background) index pairs of different classes."""
    rng = np.random.default_rng(seed)
    labels = np.array([s.label for s in samples])
    pairs = []
    for a in rng.permutation(len(samples))[:n]:
        others = np.flatnonzero(labels != labels[a])
        if len(others):
            pairs.append((int(a), int(rng.choice(others))))
    return pairs


def _swap_figures(loaded, raw: Sequence[np.ndarray], labels: np.ndarray, pairs, free) -> dict[str, float]:
    """How often the call follows the white cells (A's class) or the background (B's class)."""
    from engine.imaging.preprocess import crop_and_resize
    from engine.imaging.probes import background_swap
    from engine.inference.predict import preprocess_batch, run_network

    card = loaded.card
    swapped = np.stack([crop_and_resize(background_swap(raw[a], raw[b], background_free=free[b]), card.image_size,
                                        card.preprocess.crop) for a, b in pairs])
    logits, _ = run_network(loaded.net, preprocess_batch(swapped, card.preprocess), batch_size=128)
    calls = logits.argmax(axis=1)
    cells = np.array([labels[a] for a, _ in pairs])
    background = np.array([labels[b] for _, b in pairs])
    return {"follows_cells": float((calls == cells).mean()), "follows_background": float((calls == background).mean()),
            "n": len(pairs)}


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
    swap_c, swap_o = candidate.get("background_swap"), current.get("background_swap")
    if swap_c and swap_o and swap_c["follows_cells"] < swap_o["follows_cells"] - 2 * tol:
        worse.append(f"the call follows the white cell in {swap_c['follows_cells'] * 100:.0f} % of background swaps "
                     f"vs {swap_o['follows_cells'] * 100:.0f} % (it learnt the background)")
    if candidate["flagged_fraction"] > current["flagged_fraction"] + 0.05:
        worse.append(f"flags {candidate['flagged_fraction'] * 100:.0f} % of images vs "
                     f"{current['flagged_fraction'] * 100:.0f} %")
    return worse


def compare_models(candidate, current, parts: Mapping[str, Sequence[Sample]]) -> dict[str, Any]:
    """``{part: {"candidate": figures, "current": figures, "regressions": [...]}}`` for each
    non-empty named set of images (``lab_validation``, ``reference``); the models are
    :class:`~engine.models.resolve.LoadedModel`s; each image is decoded once."""
    from engine.io.images import load_image

    out: dict[str, Any] = {}
    for name, samples in parts.items():
        if not samples:
            continue
        raw = [load_image(s.path) for s in samples]
        labels = np.array([s.label for s in samples], np.int64)
        cand, cur = _figures(candidate, raw, labels), _figures(current, raw, labels)
        if name == "reference":  # does the call still follow the cell? (docs/results.md, "Trust")
            from engine.imaging.probes import cell_free

            pairs = swap_pairs(samples)
            free = {b: cell_free(raw[b]) for b in {b for _, b in pairs}}
            cand["background_swap"] = _swap_figures(candidate, raw, labels, pairs, free)
            cur["background_swap"] = _swap_figures(current, raw, labels, pairs, free)
        out[name] = {"candidate": cand, "current": cur, "regressions": regressions(cand, cur)}
    out["models"] = {role: {"id": m.card.id, "version": m.card.version, "sha256": m.card.weights_sha256}
                     for role, m in (("candidate", candidate), ("current", current))}
    return out


__all__ = ["REGRESSION_TOLERANCE_PTS", "SWAP_PAIRS", "compare_models", "regressions", "swap_pairs"]
