"""The out-of-distribution detector: Mahalanobis distances at several depths of the network.

For each of the architecture's OOD layers (``ModelSpec.ood_feature_layers``) the network's
globally average-pooled activations are modelled as Gaussians with one mean per class and a shared,
shrunk covariance, fitted on the training images (Lee et al. 2018). An image's score at a layer is
its smallest squared Mahalanobis distance to a class mean, divided by that layer's
:attr:`OodBlock.scale` (the score that ``block_quantile`` of the validation images stay under), so
every layer speaks in the same unit; the image's score is the largest of them. The threshold is
the ``quantile`` of the validation images' scores.

Why several depths: shallow layers describe stain, illumination and texture, the deepest one
morphology. Measured on the shipped ResNet18 1.1.0 (docs/results.md, "Out of distribution"),
``layer4`` alone let 41 % of another lab's colour-matched white-cell crops through; the maximum
over ``layer1..layer4`` flagged all of them at the same in-distribution rate.

NumPy only: the classify path scores without importing torch. Fitting is here too (it needs only
the features); :func:`engine.training.train.train` extracts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.errors import ModelError
from engine.inference.scoring import mahalanobis_const, mahalanobis_score
from engine.models.card import feature_layers_of

METHOD = "mahalanobis-multilayer"
LEGACY_METHOD = "mahalanobis"


@dataclass(frozen=True)
class OodBlock:
    """One layer's Gaussian model: its slice of the concatenated feature vector."""

    layer: str
    start: int
    stop: int
    means: np.ndarray  # (K, D)
    precision: np.ndarray  # (D, D)
    scale: float
    #: Per-class constant of the scores, set by ``__post_init__`` (not an argument, not compared
    #: or shown).
    _const: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # float64 once, and the per-class constant once: scoring a batch then holds the GIL for
        # little more than the BLAS products (the desktop app classifies in threads).
        object.__setattr__(self, "means", np.ascontiguousarray(self.means, np.float64))
        object.__setattr__(self, "precision", np.ascontiguousarray(self.precision, np.float64))
        object.__setattr__(self, "_const", mahalanobis_const(self.means, self.precision))

    def score(self, features: np.ndarray) -> np.ndarray:
        return mahalanobis_score(features[:, self.start:self.stop], self.means, self.precision,
                                 self._const) / self.scale


@dataclass(frozen=True)
class OodDetector:
    blocks: tuple[OodBlock, ...]
    threshold: float

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(b.layer for b in self.blocks)

    @property
    def n_features(self) -> int:
        return self.blocks[-1].stop if self.blocks else 0

    def layer_scores(self, features: np.ndarray) -> np.ndarray:
        """(N, L) normalised scores, one column per layer."""
        f = np.asarray(features, np.float64)
        if f.ndim != 2 or f.shape[1] != self.n_features:
            raise ModelError(f"the OOD detector expects {self.n_features} features per image, got {f.shape}")
        return np.stack([b.score(f) for b in self.blocks], axis=1) if len(f) else np.zeros((0, len(self.blocks)))

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N,) image scores: the largest normalised layer score."""
        scores = self.layer_scores(features)
        return scores.max(axis=1) if len(scores) else np.zeros(0)

    def flags(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, flagged) for (N, F) features."""
        scores = self.score(features)
        return scores, scores > self.threshold

    # ----------------------------------------------------------------------- card format
    def card_section(self, quantile: float, block_quantile: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The model card's ``ood`` section and the tensors stored beside the weights."""
        tensors: dict[str, np.ndarray] = {}
        for b in self.blocks:
            tensors[f"ood.{b.layer}.means"] = b.means.astype(np.float32)
            tensors[f"ood.{b.layer}.precision"] = b.precision.astype(np.float32)
        section = {
            "method": METHOD, "feature_layers": list(self.layers),
            "dims": [b.stop - b.start for b in self.blocks], "scales": [b.scale for b in self.blocks],
            "threshold": self.threshold, "quantile": quantile, "block_quantile": block_quantile,
            "tensors": sorted(tensors),
        }
        return section, tensors

    @classmethod
    def from_card(cls, section: Mapping[str, Any] | None, arrays: Mapping[str, Any]) -> OodDetector | None:
        """The detector a card describes (``None`` when the card has none). Cards of models
        before 1.2 (method "mahalanobis": one layer, unscaled) load as a one-block detector."""
        if not section or section.get("threshold") is None:
            return None
        method = section.get("method", LEGACY_METHOD)
        if method == LEGACY_METHOD:
            means, precision = arrays.get("ood.means"), arrays.get("ood.precision")
            if means is None or precision is None:
                return None
            means = np.asarray(means, np.float64)
            block = OodBlock(str(section.get("feature_layer", "features")), 0, means.shape[1], means,
                             np.asarray(precision, np.float64), 1.0)
            return cls((block,), float(section["threshold"]))
        if method != METHOD:
            raise ModelError(f"unknown out-of-distribution method {method!r} in the model card")
        blocks, start = [], 0
        for layer, dim, scale in zip(section["feature_layers"], section["dims"], section["scales"], strict=False):
            try:
                means = np.asarray(arrays[f"ood.{layer}.means"], np.float64)
                precision = np.asarray(arrays[f"ood.{layer}.precision"], np.float64)
            except KeyError as exc:
                raise ModelError(f"the model file lacks the OOD tensor {exc.args[0]}") from None
            if means.shape[1] != int(dim) or precision.shape != (int(dim), int(dim)) or not float(scale) > 0:
                raise ModelError(f"the OOD tensors of layer {layer} do not match the card")
            blocks.append(OodBlock(layer, start, start + int(dim), means, precision, float(scale)))
            start += int(dim)
        return cls(tuple(blocks), float(section["threshold"]))


# ---------------------------------------------------------------------------------- fitting
def fit_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int,
                  shrinkage: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Class means and a shared, shrunk precision matrix of (N, D) features."""
    feats = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    present = [c for c in range(n_classes) if (labels == c).any()]
    means = np.stack([feats[labels == c].mean(axis=0) if c in present else feats.mean(axis=0)
                      for c in range(n_classes)])
    centred = feats - means[labels]
    cov = centred.T @ centred / max(1, len(feats) - 1)
    cov += shrinkage * max(np.trace(cov) / cov.shape[0], 1e-12) * np.eye(cov.shape[0])
    return means, np.linalg.inv(cov)


def fit_detector(train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray,
                 layers: Sequence[str], dims: Sequence[int], n_classes: int, *,
                 quantile: float = 0.975, block_quantile: float = 0.95) -> OodDetector:
    """Fit the per-layer Gaussians on training features and set scales and threshold on
    validation features (held out from the fit, so the rates transfer to new images)."""
    if sum(dims) != np.asarray(train_features).shape[1]:
        raise ModelError(f"features have {np.asarray(train_features).shape[1]} columns, layers {sum(dims)}")
    if len(val_features) == 0:
        raise ModelError("the OOD detector needs validation images to set its threshold")
    blocks, start = [], 0
    for layer, dim in zip(layers, dims, strict=False):
        stop = start + int(dim)
        means, precision = fit_gaussians(np.asarray(train_features)[:, start:stop], train_labels, n_classes)
        raw = mahalanobis_score(np.asarray(val_features)[:, start:stop], means, precision)
        scale = float(max(np.quantile(raw, block_quantile), 1e-9))
        blocks.append(OodBlock(layer, start, stop, means, precision, scale))
        start = stop
    detector = OodDetector(tuple(blocks), 0.0)
    threshold = float(np.quantile(detector.score(val_features), quantile))
    return OodDetector(detector.blocks, threshold)


__all__ = ["METHOD", "OodBlock", "OodDetector", "feature_layers_of", "fit_detector", "fit_gaussians"]
