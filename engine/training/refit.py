"""Re-fit a trained model's calibration and out-of-distribution detector without retraining.

``python main.py refit MODEL DATA_DIR --out DIR`` rebuilds the model's own train/validation/test
split from its card, runs :func:`engine.training.calibrate.finish` (the code training ends with) and
writes a new model file: same network weights, new temperature, review threshold, detector
tensors and test figures. Used when the detector changes (1.2 moved from one layer to four) so
a model that took half an hour to train need not be trained again. The card records it under
``training.refit``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__
from engine.core.errors import DataLayoutError
from engine.core.progress import Progress
from engine.inference.onnx_export import with_graph
from engine.models.card import ModelCard
from engine.models.checkpoint import save_model
from engine.models.resolve import load_model
from engine.training.calibrate import finish
from engine.training.data import LoadFailure, load_resized, split_samples
from engine.training.int8 import with_int8_graph


def _load(samples, size: int) -> tuple[np.ndarray, np.ndarray]:
    result: tuple[np.ndarray, list[LoadFailure]] | None = None
    for item in load_resized(list(samples), size, "center", workers=2):
        if not isinstance(item, Progress):  # the final (array, failures) pair, not a Progress record
            result = item
    assert result is not None  # load_resized always yields (array, failures) last
    array, failures = result
    if failures:
        raise DataLayoutError(f"{len(failures)} image(s) of the model's split cannot be read, e.g. "
                              f"{failures[0].path}: {failures[0].reason}")
    return array, np.array([s.label for s in samples], np.int64)


def refit(model: str | Path, data_dir: str | Path, out_dir: str | Path, *, model_version: str | None = None,
          ood_quantile: float | None = None) -> ModelCard:
    """Re-fit ``model`` on its own split of ``data_dir``; returns the new card (written to
    ``out_dir``)."""
    import torch

    started = time.time()
    loaded = load_model(model, recalibrating=True)  # refit replaces the calibration fields
    card = loaded.card
    recipe: dict[str, Any] = dict(card.training.get("recipe", {}))
    images = {name: _load(split_samples(card, data_dir, name), card.image_size) for name in ("train", "val", "test")}
    quantile = float(ood_quantile if ood_quantile is not None else recipe.get("ood_quantile", 0.975))
    done = finish(loaded.net, card.architecture, card.preprocess,
                  train_imgs=images["train"][0], train_y=images["train"][1],
                  val_imgs=images["val"][0], val_y=images["val"][1],
                  test_imgs=images["test"][0], test_y=images["test"][1],
                  review_precision=float(recipe.get("review_precision", 0.995)), ood_quantile=quantile)
    split = card.data_fingerprint.get("split", recipe.get("split", "random"))
    metrics = dict(card.metrics)
    metrics[f"test_{split}"] = done.report
    training = dict(card.training)
    training["refit"] = {"allsight_version": __version__, "from_weights_sha256": card.weights_sha256,
                         "seconds": round(time.time() - started, 1), "ood_quantile": quantile}
    new = replace(card, version=model_version or card.version, temperature=done.temperature,
                  review_threshold=done.review_threshold, ood=done.ood_section, metrics=metrics,
                  training=training, created="", libraries={}, path=None)
    tensors = {f"net.{k}": v for k, v in loaded.net.state_dict().items()}
    tensors.update({k: torch.from_numpy(v) for k, v in done.ood_tensors.items()})
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    saved = with_graph(save_model(tensors, new, out_dir, Path(card.weights_file).stem or card.id), loaded.net)
    # new thresholds move the bands of the INT8 graph's fp32 check: made again for the new card
    return with_int8_graph(saved, images["train"][0], images["val"], images["test"])


__all__ = ["refit"]
