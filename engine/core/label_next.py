"""Label next (active learning): which images of a sample a review teaches the model most.

The images the model is least sure of: first those unlike its training images (out of
distribution, the largest feature distance first), then the rest by the lowest calibrated
confidence. Only images with a result and no review yet are offered. Reviews made in this view
are marked ``via="label_next"`` in the audit trail, so the retraining wizard can say how many of
its training images came from it. One rule, used by the results table and the wizard.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.core.records import ReviewedImage

VIA_LABEL_NEXT = "label_next"


def wants_label(r: ReviewedImage) -> bool:
    """Offered by Label next: a result, and no review yet."""
    return r.ok and not r.reviewed


def teaching_key(r: ReviewedImage) -> tuple[int, float, float]:
    """Sort key: smaller teaches more (out of distribution first, by distance; then least confident)."""
    if r.out_of_distribution:
        return 0, -(r.ood_score or 0.0), r.confidence if r.confidence is not None else 0.0
    return 1, 0.0, r.confidence if r.confidence is not None else 0.0


def label_next(rows: Iterable[ReviewedImage]) -> list[ReviewedImage]:
    """The images to review next, the most teaching first."""
    return sorted((r for r in rows if wants_label(r)), key=teaching_key)


__all__ = ["VIA_LABEL_NEXT", "label_next", "teaching_key", "wants_label"]
