"""Evaluating a model on a class-folder tree (every image, no split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.checkpoint import load_model
from engine.data import discover_dataset, load_resized
from engine.metrics import classification_report
from engine.predict import preprocess_batch, run_network, softmax
from engine.progress import Progress


def evaluate_folder(data_dir: str | Path, model: str | None = None, *, batch_size: int = 64,
                    shift=None) -> dict[str, Any]:
    """Metrics of ``model`` on every image under ``data_dir``'s class folders.

    ``shift`` optionally perturbs each raw image first (the robustness benchmark).
    """
    loaded = load_model(model)
    card = loaded.card
    dataset = discover_dataset(data_dir, card.classes, min_classes=1)
    result = None
    for item in load_resized(dataset.samples, card.image_size, card.preprocess.crop):
        if not isinstance(item, Progress):
            result = item
    array, failures = result
    bad = {f.path for f in failures}
    keep = [i for i, s in enumerate(dataset.samples) if s.path not in bad]
    images = array[keep]
    if shift is not None:
        images = np.stack([shift(im) for im in images]) if len(images) else images
    labels = np.array([dataset.samples[i].label for i in keep], np.int64)
    logits, _ = run_network(loaded.net, preprocess_batch(images, card.preprocess), batch_size=batch_size)
    report = classification_report(softmax(logits, card.temperature), labels, card.classes)
    report["model"] = {"id": card.id, "version": card.version, "sha256": card.weights_sha256}
    report["skipped"] = [{"path": str(f.path), "reason": f.reason} for f in failures]
    return report
