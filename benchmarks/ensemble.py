"""Several trained networks as one: what an ensemble would give, measured before building one.

Used by ``benchmarks/shortcut.py --model A --model B ...`` (and ``--tta``: one model, each image
seen in several orientations, :data:`TTA_VIEWS`). Each member classifies an image with
its own card (its own input size and preprocessing); the ensemble's probabilities are the
members' mean; its review threshold is fitted again on the validation split by the product's
own rule (:func:`engine.inference.predict.review_threshold`: the lowest confidence whose unflagged
validation images are >= 99.5 % correct), and every other flag (image checks, ``unlike_training``)
is kept when any member raises it. So its flag figures are those the product would give if it
shipped the ensemble with a threshold refitted for it and each member's detector. The members
must have been trained on the same split (the test split's files are checked to be the same).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from engine.core.errors import ConfigError
from engine.core.flags import FlagReason, is_out_of_distribution
from engine.core.records import ImageResult
from engine.inference.classifier import Classifier
from engine.inference.predict import review_threshold
from engine.io.images import load_image
from engine.training.data import split_samples

#: Test-time augmentation: the views each image is classified in (``shortcut.py --tta``), as
#: (quarter turns, mirrored first). Flips and 90-degree turns are the training's own geometric
#: augmentation, so every view is one the network was trained on.
TTA_VIEWS: dict[str, tuple[tuple[int, bool], ...]] = {
    "flip": ((0, False), (0, True)),
    "rot4": ((0, False), (1, False), (2, False), (3, False)),
}


def probabilities(results: Sequence[ImageResult], classes: Sequence[str]) -> np.ndarray:
    """(N, C) class probabilities of ``results``; an unreadable image counts as uniform."""
    uniform = [1 / len(classes)] * len(classes)
    return np.array([[r.probabilities[c] for c in classes] if r.ok else uniform for r in results])


class View:
    """A classifier that sees every image turned by ``quarter_turns`` (mirrored first when
    ``mirrored``): one member of a test-time-augmentation ensemble."""

    def __init__(self, classifier: Classifier, quarter_turns: int, mirrored: bool):
        self.classifier, self.quarter_turns, self.mirrored = classifier, quarter_turns, mirrored
        self.card, self.classes = classifier.card, classifier.classes

    def classify_arrays(self, images: Sequence[np.ndarray], *, batch_size: int = 64) -> list[ImageResult]:
        turned = [np.ascontiguousarray(np.rot90(im[:, ::-1] if self.mirrored else im, self.quarter_turns))
                  for im in images]
        return self.classifier.classify_arrays(turned, batch_size=batch_size)


class Ensemble:
    """The mean of ``members``' probabilities, with a review threshold fitted on validation."""

    def __init__(self, members: Sequence[Classifier | View], data_dir: str, *, review_precision: float = 0.995):
        if len(members) < 2:
            raise ConfigError("an ensemble needs at least two models")
        self.members = list(members)
        self.classes = list(self.members[0].classes)
        tests = [[s.path for s in split_samples(m.card, data_dir, "test")] for m in self.members]
        if any(t != tests[0] for t in tests[1:]):
            raise ConfigError("the models were tested on different test splits: an ensemble of them cannot be measured")
        val = split_samples(self.members[0].card, data_dir, "val")
        images = [load_image(s.path) for s in val]
        labels = np.array([s.label for s in val], np.int64)
        probs = self._mean_probs([m.classify_arrays(images, batch_size=64) for m in self.members])
        self.review_threshold = review_threshold(probs, labels, review_precision)

    def _mean_probs(self, per_member: Sequence[Sequence[ImageResult]]) -> np.ndarray:
        return np.mean([probabilities(results, self.classes) for results in per_member], axis=0)

    def classify_arrays(self, images: Sequence[np.ndarray], *, batch_size: int = 64) -> list[ImageResult]:
        per_member = [m.classify_arrays(list(images), batch_size=batch_size) for m in self.members]
        probs = self._mean_probs(per_member)
        combined = []
        for i, first in enumerate(per_member[0]):
            if not all(results[i].ok for results in per_member):
                combined.append(next(results[i] for results in per_member if not results[i].ok))
                continue
            k = int(probs[i].argmax())
            flags = {f for results in per_member for f in results[i].flags if f is not FlagReason.LOW_CONFIDENCE}
            if probs[i, k] < self.review_threshold:
                flags.add(FlagReason.LOW_CONFIDENCE)
            combined.append(dataclasses.replace(
                first, predicted_class=self.classes[k], confidence=float(probs[i, k]),
                probabilities={c: float(p) for c, p in zip(self.classes, probs[i], strict=True)},
                needs_review=bool(flags), out_of_distribution=is_out_of_distribution(flags), flags=tuple(flags),
                ood_score=None))
        return combined


__all__ = ["TTA_VIEWS", "Ensemble", "View", "probabilities"]
