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


def mahalanobis_score(features: np.ndarray, means: np.ndarray, precision: np.ndarray,
                      const: np.ndarray | None = None) -> np.ndarray:
    """Minimum over classes of the squared Mahalanobis distance (higher = less familiar).

    Expanded as f'Pf - 2 mu'Pf + mu'P mu so the one large product, F @ P, is done once for all
    classes by BLAS (a per-class einsum cost ~1 ms per image for 512-d features).
    """
    f = np.asarray(features, np.float64)
    p = np.asarray(precision, np.float64)
    mu = np.asarray(means, np.float64)
    fp = f @ p  # (N, D)
    quad = np.einsum("ij,ij->i", fp, f)  # f' P f
    cross = fp @ mu.T  # (N, K): mu_k' P f (P is symmetric)
    if const is None:  # mu_k' P mu_k: a property of the model, which callers may compute once
        const = mahalanobis_const(mu, p)
    distances = quad[:, None] - 2.0 * cross + const[None, :]
    return np.maximum(distances.min(axis=1), 0.0) if len(f) else np.zeros(0)


def mahalanobis_const(means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """mu_k' P mu_k for every class mean (two BLAS products, not a three-operand einsum)."""
    mu = np.asarray(means, np.float64)
    return np.einsum("kj,kj->k", mu @ np.asarray(precision, np.float64), mu)
