"""NumPy-only scoring shared by every inference runtime: calibrated softmax and the
Mahalanobis out-of-distribution score. Importing this module never imports torch, so the
ONNX Runtime path of batch inference starts without it."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (temperature scaling, Guo et al. 2017)."""
    z = logits / max(temperature, 1e-6)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def mahalanobis_score(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Minimum over classes of the squared Mahalanobis distance (higher = less familiar)."""
    f = features.astype(np.float64)
    p = precision.astype(np.float64)
    best = np.full(len(f), np.inf)
    for mu in means.astype(np.float64):
        d = f - mu
        best = np.minimum(best, np.einsum("ij,jk,ik->i", d, p, d))
    return best
