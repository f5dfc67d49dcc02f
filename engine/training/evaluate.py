"""Evaluating a model on a class-folder tree (every image, no split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.core.progress import Progress
from engine.imaging.preprocess import model_input_only
from engine.inference.classifier import Classifier
from engine.inference.scoring import softmax
from engine.training.data import LoadFailure, discover_dataset, load_resized
from engine.training.metrics import classification_report


def evaluate_folder(data_dir: str | Path, model: str | None = None, *, batch_size: int = 64,
                    shift=None) -> dict[str, Any]:
    """Metrics of ``model`` on every image under ``data_dir``'s class folders.

    ``shift`` optionally perturbs each raw image first (the robustness benchmark). The network
    runs as ``classify`` runs it (ONNX Runtime on the CPU: no torch needed, the lean install
    evaluates too).
    """
    classifier = Classifier(model)
    card = classifier.card
    dataset = discover_dataset(data_dir, card.classes, min_classes=1)
    result: tuple[np.ndarray, list[LoadFailure]] | None = None
    for item in load_resized(dataset.samples, card.image_size, card.preprocess.crop):
        if not isinstance(item, Progress):
            result = item
    assert result is not None  # load_resized always yields (array, failures) last
    array, failures = result
    bad = {f.path for f in failures}
    keep = [i for i, s in enumerate(dataset.samples) if s.path not in bad]
    images = array[keep]
    if shift is not None:
        images = np.stack([shift(im) for im in images]) if len(images) else images
    labels = np.array([dataset.samples[i].label for i in keep], np.int64)
    inputs = np.stack([model_input_only(im, card.preprocess)[1] for im in images]) if len(images) else images
    parts = [classifier.backend.run(inputs[i:i + batch_size])[0] for i in range(0, len(inputs), batch_size)]
    logits = np.concatenate(parts) if parts else np.zeros((0, len(card.classes)), np.float32)
    report = classification_report(softmax(logits, card.temperature), labels, card.classes)
    report["model"] = {"id": card.id, "version": card.version, "sha256": card.weights_sha256}
    report["skipped"] = [{"path": str(f.path), "reason": f.reason} for f in failures]
    return report


def evaluate_samples(loaded, samples, shifts: dict | None = None, batch_size: int = 128) -> dict[str, Any]:
    """Metrics on ``samples`` for each named perturbation of the raw (full-resolution) images.

    Perturbations run before crop/resize and preprocessing, as a different camera would.
    """
    from engine.imaging.preprocess import crop_and_resize
    from engine.inference.predict import preprocess_batch, run_network
    from engine.io.images import load_image

    card = loaded.card
    shifts = shifts or {"clean": lambda im: im}
    raw = [load_image(s.path) for s in samples]
    labels = np.array([s.label for s in samples], np.int64)
    out = {}
    for name, shift in shifts.items():
        resized = np.stack([crop_and_resize(shift(im), card.image_size, card.preprocess.crop) for im in raw])
        logits, _ = run_network(loaded.net, preprocess_batch(resized, card.preprocess), batch_size=batch_size)
        report = classification_report(softmax(logits, card.temperature), labels, card.classes)
        report["model"] = {"id": card.id, "version": card.version, "sha256": card.weights_sha256}
        out[name] = report
    return out
