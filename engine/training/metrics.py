"""Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix, ECE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    if len(y_true) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_report(probs: np.ndarray, y_true: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The evaluation JSON's metric keys: n, accuracy, macro_f1, ece, classes, per_class, confusion_matrix."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = probs.argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    per_class = {}
    f1s = []
    for i, name in enumerate(classes):
        tp = cm[i, i]
        predicted = cm[:, i].sum()
        support = cm[i, :].sum()
        precision = float(tp / predicted) if predicted else 0.0
        recall = float(tp / support) if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": float(f1), "support": int(support)}
        if support:
            f1s.append(f1)
    n = int(len(y_true))
    return {
        "n": n,
        "accuracy": float(np.trace(cm) / n) if n else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "ece": expected_calibration_error(probs, y_true),
        "classes": list(classes),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def format_report(report: dict[str, Any]) -> str:
    """A readable table for terminals and docs."""
    classes = report["classes"]
    lines = [
        f"images {report['n']}   accuracy {report['accuracy'] * 100:.2f} %   "
        f"macro-F1 {report['macro_f1']:.4f}   ECE {report['ece']:.4f}",
        "",
        f"{'class':<8} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}",
    ]
    for c in classes:
        m = report["per_class"][c]
        lines.append(f"{c:<8} {m['precision']:>9.4f} {m['recall']:>7.4f} {m['f1']:>7.4f} {m['support']:>8d}")
    lines += ["", "confusion matrix (rows = true, columns = predicted)", " " * 9 + "".join(f"{c:>8}" for c in classes)]
    for c, row in zip(classes, report["confusion_matrix"], strict=False):
        lines.append(f"{c:<9}" + "".join(f"{v:>8d}" for v in row))
    return "\n".join(lines)
