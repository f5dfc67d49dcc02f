"""The domain's per-image records and the rules on them, written once.

* :class:`ImageResult` — what the model said about one image (the classifier's output, the CSV
  row, the child process's message).
* :class:`ReviewedImage` — one image of a sample: that result, where it came from, and its
  current review. The store returns it, the reports print it, the GUI table shows it, the
  sample summary counts it. Its properties are the rules: :attr:`~ReviewedImage.flagged` (needs
  a person's look), :attr:`~ReviewedImage.withheld` (counted in no class), the
  :attr:`~ReviewedImage.effective_class`.
* :func:`sign_off_blockers` — what stops a sample from being signed off;
  :func:`sign_off_statement` — the sentence a reviewer signs.

The sample's call is :func:`engine.core.summary.summarize`, over these records.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine import CLASS_IDS
from engine.core.flags import FlagReason, describe, format_codes, is_out_of_distribution, normalize, withholds_call
from engine.core.textsafe import csv_text

#: A reviewer's verdict for an image that should not count towards any class (not a usable
#: smear, unreadable, out of distribution...). Accepted by the store's ``record_review`` besides
#: the :data:`engine.CLASS_IDS`.
EXCLUDED_CLASS = "Excluded"


class ImageStatus(StrEnum):
    """Whether the model could classify the image (a member equals its string: ``"ok"``)."""

    OK = "ok"
    ERROR = "error"
    #: Not classified yet (a report of a sample still being classified lists it so). Never
    #: stored: the store keeps only what the model returned.
    PENDING = "pending"


#: The CSV columns of ``classify``, in order (one row per image).
CSV_COLUMNS: tuple[str, ...] = (
    "path", "status", "predicted_class", "confidence", "needs_review", "out_of_distribution",
    *(f"prob_{c}" for c in CLASS_IDS), "error", "flags",
)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _ood_sentences(flags: Iterable[FlagReason]) -> str:
    return describe(r for r in flags if r is not FlagReason.LOW_CONFIDENCE)


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image. ``status`` is "ok" or "error" (then only ``error`` is set)."""

    path: str
    status: ImageStatus
    predicted_class: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    needs_review: bool = False
    out_of_distribution: bool = False
    ood_score: float | None = None
    error: str | None = None
    #: Every reason the image is flagged (:class:`~engine.core.flags.FlagReason`), in display order.
    flags: tuple[FlagReason, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", ImageStatus(self.status))
        object.__setattr__(self, "flags", normalize(self.flags))

    @property
    def ok(self) -> bool:
        return self.status is ImageStatus.OK

    @property
    def ood_reason(self) -> str:
        """Why the image is out of distribution, in plain sentences ("" when it is not)."""
        return _ood_sentences(self.flags)

    def csv_row(self) -> dict[str, str]:
        """The row for :data:`CSV_COLUMNS`: flags as "true"/"false", missing values as "".

        Text cells go through :func:`~engine.core.textsafe.csv_text` (a leading ``'`` before
        ``=``, ``+``, ``-``, ``@``, tab, CR: no spreadsheet formula); numbers are written as they are.
        """
        probs = self.probabilities or {}
        row = {
            "path": csv_text(str(self.path)),
            "status": str(self.status),
            "predicted_class": csv_text(self.predicted_class or ""),
            "confidence": _fmt(self.confidence),
            "needs_review": "true" if self.needs_review else "false",
            "out_of_distribution": "true" if self.out_of_distribution else "false",
        }
        for c in CLASS_IDS:
            row[f"prob_{c}"] = _fmt(probs.get(c))
        row["error"] = csv_text(self.error or "")
        row["flags"] = csv_text(format_codes(self.flags))
        return row

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (native types, ``None`` for missing values)."""
        return {
            "path": str(self.path), "status": str(self.status), "predicted_class": self.predicted_class,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities) if self.probabilities is not None else None,
            "needs_review": self.needs_review, "out_of_distribution": self.out_of_distribution,
            "ood_score": self.ood_score, "flags": [str(r) for r in self.flags],
            "flag_sentences": [r.sentence for r in self.flags],
            "ood_reason": self.ood_reason or None, "error": self.error,
        }


@dataclass(frozen=True)
class ReviewedImage:
    """One image of a sample: the model's result (never changed by a review), its provenance and
    its current review.

    ``final_class`` is the reviewer's class (possibly :data:`EXCLUDED_CLASS`), ``None`` while the
    image is not reviewed. Any flag implies ``needs_review``; any flag but low confidence implies
    ``out_of_distribution``. ``ood_score`` (a feature distance) is for the JSON, never for a
    technician's screen. The provenance fields are empty for an image that is not stored.
    """

    path: str
    status: ImageStatus
    predicted_class: str | None = None
    confidence: float | None = None
    probabilities: Mapping[str, float] | None = None
    needs_review: bool = False
    out_of_distribution: bool = False
    ood_score: float | None = None
    #: Why the image is flagged (:class:`~engine.core.flags.FlagReason` codes, display order).
    flags: tuple[FlagReason, ...] = ()
    error: str | None = None
    file_name: str = ""
    #: The image's place in its sample (0-based).
    position: int = 0
    final_class: str | None = None
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    review_note: str = ""
    # provenance, from the store
    sample_id: str = ""
    image_sha256: str | None = None
    model_id: str = ""
    model_version: str = ""
    model_sha256: str = ""
    predicted_at: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "status", ImageStatus(self.status))
        flags = normalize(self.flags or ())
        object.__setattr__(self, "flags", flags)
        if flags:
            object.__setattr__(self, "needs_review", True)
        if is_out_of_distribution(flags):
            object.__setattr__(self, "out_of_distribution", True)
        if not self.file_name:
            object.__setattr__(self, "file_name", os.path.basename(self.path))

    @classmethod
    def from_result(cls, result: ImageResult, *, position: int = 0, **fields: Any) -> ReviewedImage:
        """A not-yet-reviewed image from the classifier's result (``fields`` override or add:
        provenance, a review, another spelling of the path)."""
        values: dict[str, Any] = dict(
            path=str(result.path), status=result.status, predicted_class=result.predicted_class,
            confidence=result.confidence, probabilities=result.probabilities, needs_review=result.needs_review,
            out_of_distribution=result.out_of_distribution, ood_score=result.ood_score, flags=result.flags,
            error=result.error, position=position)
        values.update(fields)
        return cls(**values)

    def as_result(self, path: str | os.PathLike[str] | None = None) -> ImageResult:
        """The model's result for this image, without the review or provenance (``path``: another
        spelling of the path, e.g. as a command line named it)."""
        return ImageResult(
            path=os.fspath(path) if path is not None else self.path, status=self.status,
            predicted_class=self.predicted_class, confidence=self.confidence,
            probabilities=None if self.probabilities is None else dict(self.probabilities),
            needs_review=self.needs_review, out_of_distribution=self.out_of_distribution,
            ood_score=self.ood_score, error=self.error, flags=self.flags)

    def with_review(self, final_class: str | None, reviewed_by: str | None, reviewed_at: str | None = None,
                    note: str = "") -> ReviewedImage:
        """The same image with this review (``final_class=None``: no review)."""
        if final_class is None:
            return dataclasses.replace(self, final_class=None, reviewed_by=None, reviewed_at=None, review_note="")
        return dataclasses.replace(self, final_class=final_class, reviewed_by=reviewed_by, reviewed_at=reviewed_at,
                                   review_note=note)

    # ------------------------------------------------------------------ the rules
    @property
    def ok(self) -> bool:
        return self.status is ImageStatus.OK

    @property
    def reviewed(self) -> bool:
        return self.final_class is not None

    @property
    def overridden(self) -> bool:
        """A reviewer gave another class than the model's."""
        return self.reviewed and self.final_class != self.predicted_class

    @property
    def flagged(self) -> bool:
        """Needs a person's look before sign-off: low confidence, out of distribution or an error."""
        return self.needs_review or self.out_of_distribution or not self.ok

    @property
    def to_review(self) -> bool:
        return self.flagged and not self.reviewed

    @property
    def withheld(self) -> bool:
        """Counted in no class: the model cannot judge the image and no one has reviewed it."""
        return self.ok and not self.reviewed and (withholds_call(self.flags) or self.out_of_distribution)

    @property
    def effective_class(self) -> str | None:
        """The class that counts: the reviewer's when reviewed, else the model's (None on error)."""
        if self.reviewed:
            return self.final_class
        return self.predicted_class if self.ok else None

    @property
    def ood_reason(self) -> str:
        """Why the image is out of distribution, in plain sentences ("" when it is not)."""
        return _ood_sentences(self.flags)

    def flag_sentences(self) -> list[str]:
        """The plain sentence of each flag (a generic one for a flag without a reason code)."""
        sentences = [r.sentence for r in self.flags]
        if not sentences and self.out_of_distribution:
            sentences.append("Unlike the images the model was trained on")
        if not sentences and self.needs_review:
            sentences.append("The model is not confident about this image")
        return sentences


@dataclass(frozen=True)
class SignOffBlockers:
    """What stops a sample from being signed off: flagged images no one reviewed, images the
    model has not classified yet. Falsy when nothing does."""

    n_unreviewed: int = 0
    n_pending: int = 0
    #: The file name of the first flagged image not reviewed (for the message).
    first_unreviewed: str = ""

    def __bool__(self) -> bool:
        return bool(self.n_unreviewed or self.n_pending)

    def describe(self) -> str:
        """One sentence per blocker, joined ("" when nothing blocks)."""
        parts = []
        if self.n_unreviewed:
            example = f" (e.g. {self.first_unreviewed})" if self.first_unreviewed else ""
            parts.append(f"{self.n_unreviewed} flagged image(s) still need a review{example}")
        if self.n_pending:
            parts.append(f"{self.n_pending} image(s) have not been classified yet")
        return "; ".join(parts)


def sign_off_blockers(images: Iterable[ReviewedImage], n_images: int) -> SignOffBlockers:
    """The blockers of a sample of ``n_images`` images whose classified ones are ``images``."""
    images = list(images)
    unreviewed = [im for im in images if im.to_review]
    return SignOffBlockers(n_unreviewed=len(unreviewed), n_pending=max(0, n_images - len(images)),
                           first_unreviewed=unreviewed[0].file_name if unreviewed else "")


def _images(n: int, what: str = "") -> str:
    return f"{n} {what}{' ' if what else ''}image{'' if n == 1 else 's'}"


def sign_off_statement(sample_id: str, images: Iterable[ReviewedImage]) -> str:
    """The sentence a reviewer signs for a sample, from its records (the GUI and the CLI show
    this one text; the store keeps it with the sign-off): how many images were flagged and
    reviewed, how many the reviewer reclassified or excluded, and the approval.

    >>> sign_off_statement("S-001", [])
    'I have reviewed sample S-001 (0 images) and approve this report.'
    """
    images = list(images)
    n = len(images)
    flagged = sum(1 for im in images if im.flagged)
    changed = sum(1 for im in images if im.overridden)
    if flagged:
        text = f"I have reviewed the {_images(flagged, 'flagged')} of sample {sample_id} (of {_images(n)})"
    else:
        text = f"I have reviewed sample {sample_id} ({_images(n)}" + (", none flagged)" if n else ")")
    if changed:
        text += f", changed the class of {_images(changed)}"
    return text + " and approve this report."


__all__ = ["CSV_COLUMNS", "EXCLUDED_CLASS", "ImageResult", "ImageStatus", "ReviewedImage", "SignOffBlockers",
           "sign_off_blockers", "sign_off_statement"]
