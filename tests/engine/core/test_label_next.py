"""Label next: unreviewed results only; out of distribution first (largest distance first),
then the least confident."""

from __future__ import annotations

import dataclasses

from engine.core.flags import FlagReason
from engine.core.label_next import label_next
from engine.core.records import ImageResult, ReviewedImage


def image(name: str, conf: float, *, ood: float | None = None, reviewed: bool = False,
          status: str = "ok") -> ReviewedImage:
    flags = (FlagReason.UNLIKE_TRAINING,) if ood is not None else ()
    r = ReviewedImage.from_result(ImageResult(f"/s/{name}.png", status, "Pre" if status == "ok" else None,
                                              conf if status == "ok" else None, needs_review=bool(flags),
                                              flags=flags, error=None if status == "ok" else "broken"))
    if ood is not None:
        r = dataclasses.replace(r, ood_score=ood)
    return r.with_review("Pre", "tom", "2026-12-02T10:00:00") if reviewed else r


def test_out_of_distribution_first_then_the_least_confident_and_never_reviewed_or_broken_ones():
    rows = [image("sure", 0.99), image("unsure", 0.41), image("far", 0.9, ood=50.0), image("farther", 0.95, ood=80.0),
            image("done", 0.3, reviewed=True), image("broken", 0.0, status="error"), image("middle", 0.7)]
    assert [r.file_name or r.path.rsplit("/", 1)[1] for r in label_next(rows)] == [
        "farther.png", "far.png", "unsure.png", "middle.png", "sure.png"]
