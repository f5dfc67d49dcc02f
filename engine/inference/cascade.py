"""INT8 with an fp32 check: the quantised graph decides wherever its answer is clear.

A static INT8 graph runs the network about twice as fast as fp32 on a CPU with 8-bit
matrix instructions, but its numbers are not fp32's: measured on the shipped ResNet18, its call
differs on 0.3–1.1 % of the test images (all of them images fp32 itself is unsure of), and its
confidence and out-of-distribution score move a little. Every decision the product takes from the
network's output is a comparison with a boundary — the call (which class is on top), the review
flag (confidence against the card's review threshold) and the out-of-distribution flag (score
against the detector's threshold) — so where INT8's value lies close to a boundary, the same
images go through the fp32 graph and its answer is the one used. :class:`Fp32Check` holds how
close is close, as measured for each model when its INT8 graph is made
(:mod:`engine.inference.quantize`), and travels in the card (``graphs.int8.fp32_check``).

Measured for the shipped models: see ``graphs.int8.agreement`` in their cards and
docs/performance.md ("INT8 with an fp32 check").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.inference.runtime import OnnxBackend

#: Smallest value whose logarithm is taken (confidences of exactly 1, scores of 0).
_TINY = 1e-12


@dataclass(frozen=True)
class Fp32Check:
    """Where the fp32 graph decides instead of INT8.

    ``margin``: INT8's top probability minus its second below which the call is fp32's.
    ``confidence_band``: |log(1 - confidence) - log(1 - review threshold)| below which the review
    flag is fp32's (a log scale: near a threshold of 0.98, 0.3 is 0.973–0.985).
    ``ood_band``: |log score - log threshold| below which the out-of-distribution flag is fp32's.
    """

    margin: float
    confidence_band: float
    ood_band: float

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Fp32Check:
        """From a card's ``graphs.int8`` entry (validated by :mod:`engine.models.card`)."""
        check = entry["fp32_check"]
        return cls(float(check["margin"]), float(check["confidence_band"]), float(check["ood_band"]))

    def as_dict(self) -> dict[str, float]:
        return {"margin": self.margin, "confidence_band": self.confidence_band, "ood_band": self.ood_band}

    def needs_fp32(self, probs: np.ndarray, review_threshold: float, scores: np.ndarray | None = None,
                   ood_threshold: float | None = None) -> np.ndarray:
        """Which rows of INT8's calibrated probabilities (and detector scores) are too close to a
        boundary for INT8 to decide: a boolean array, one per row."""
        top2 = np.sort(probs, axis=1)[:, -2:]
        near = (top2[:, 1] - top2[:, 0]) < self.margin
        if 0.0 < review_threshold < 1.0:
            sureness = np.log(np.maximum(1.0 - top2[:, 1], _TINY))
            near |= np.abs(sureness - np.log(1.0 - review_threshold)) < self.confidence_band
        if scores is not None and ood_threshold is not None and ood_threshold > 0:
            near |= np.abs(np.log(np.maximum(scores, _TINY)) - np.log(ood_threshold)) < self.ood_band
        return near


class CascadeBackend:
    """The INT8 graph first; the rows ``needs_fp32`` picks again through the fp32 graph.

    ``needs_fp32(logits, features)`` is the classifier's rule (it knows the temperature, the
    thresholds and the detector). Both sessions are ONNX Runtime's, re-entrant, so batches may
    run through this backend from several threads at once. Grad-CAM's class maps come from the
    fp32 graph: a heat map is an explanation, not a speed path.
    """

    name = "onnxruntime"
    device = "cpu"
    precision = "int8"

    def __init__(self, int8: OnnxBackend, fp32: OnnxBackend,
                 needs_fp32: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.int8, self.fp32 = int8, fp32
        self._needs_fp32 = needs_fp32
        self.threads = int8.threads
        self._lock = threading.Lock()
        #: Images run, and how many of them the fp32 graph decided (for the run's report).
        self.images = 0
        self.images_checked = 0

    @property
    def has_class_maps(self) -> bool:
        return self.fp32.has_class_maps

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.int8.run(images)
        again = np.flatnonzero(self._needs_fp32(logits, features))
        if again.size:
            logits[again], features[again] = self.fp32.run(np.ascontiguousarray(images[again]))
        with self._lock:
            self.images += len(images)
            self.images_checked += int(again.size)
        return logits, features

    def class_maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.fp32.class_maps(images)


__all__ = ["CascadeBackend", "Fp32Check"]
