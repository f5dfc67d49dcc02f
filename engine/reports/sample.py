"""The sample report's content: one patient's sample (a folder of images), its images as
:class:`~engine.core.records.ReviewedImage` records, the model that classified them and the
summary, built from the result store or read back from the JSON export.

Plain data, so the writers (:mod:`engine.reports.pdf`, :mod:`engine.reports.tables`,
:mod:`engine.reports.fhir`) depend on neither the inference engine nor the GUI. The schema of the
JSON export is in docs/report.md.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS, __version__
from engine.core.errors import AllSightError
from engine.core.flags import (
    codes_from_legacy,
)
from engine.core.records import EXCLUDED_CLASS, ImageStatus, ReviewedImage
from engine.imaging.preprocess import PreprocessConfig

log = logging.getLogger(__name__)


JSON_SCHEMA = "allsight.sample-report/1"
#: Printed on every PDF page and carried in every export.
NOTICE = "Research use only \u2014 not a medical device."

STATUSES = tuple(str(s) for s in ImageStatus)


class ReportError(AllSightError):
    """A report could not be written (or its input is inconsistent)."""


# ======================================================================================= input
def _class_or_none(value: Any, what: str, allowed: tuple[str, ...] = CLASS_IDS) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise ReportError(f"{what} must be one of {', '.join(allowed)} or empty, got {value!r}")
    return str(value)


def display_name(class_id: str | None) -> str:
    """``"Pre"`` -> ``"Pre-B ALL"``; ``None`` -> ``""``."""
    if class_id == EXCLUDED_CLASS:
        return "Excluded (not counted)"
    return "" if class_id is None else CLASS_DISPLAY_NAMES.get(class_id, class_id)


def checked_image(im: ReviewedImage) -> ReviewedImage:
    """``im`` as a report prints it, or :class:`ReportError` naming the file and what is wrong.

    A failed image keeps only its error (and a reviewer's "Excluded"); the classes must be known
    ones and the confidence a probability.
    """
    if not isinstance(im, ReviewedImage):
        raise ReportError(f"images must be ReviewedImage records, got {type(im).__name__}")
    name = im.file_name
    _class_or_none(im.predicted_class, f"{name}: model_class")
    _class_or_none(im.final_class, f"{name}: final_class", (*CLASS_IDS, EXCLUDED_CLASS))
    if im.confidence is not None and not 0.0 <= float(im.confidence) <= 1.0:
        raise ReportError(f"{name}: confidence must be between 0 and 1, got {im.confidence}")
    if im.ok and im.predicted_class is None:
        raise ReportError(f"{name}: an image with status 'ok' needs a model_class")
    if im.ok:
        return im
    if im.status == ImageStatus.PENDING:  # not classified yet: nothing but the file
        return dataclasses.replace(
            im, predicted_class=None, confidence=None, probabilities=None, flags=(), ood_score=None, error=None,
            needs_review=False, out_of_distribution=False, final_class=None, reviewed_by=None, reviewed_at=None)
    keep = im.final_class if im.final_class == EXCLUDED_CLASS else None
    return dataclasses.replace(
        im, predicted_class=None, confidence=None, probabilities=None, flags=(), ood_score=None,
        error=im.error or "unknown error", final_class=keep, reviewed_by=im.reviewed_by if keep else None,
        reviewed_at=im.reviewed_at if keep else None)


def image_to_dict(im: ReviewedImage) -> dict[str, Any]:
    """One image of the JSON export (docs/report.md: the model's class is ``model_class``)."""
    return {
        "path": im.path, "file_name": im.file_name, "status": str(im.status),
        "model_class": im.predicted_class, "model_class_display": display_name(im.predicted_class) or None,
        "confidence": im.confidence, "needs_review": im.needs_review,
        "out_of_distribution": im.out_of_distribution, "final_class": im.final_class,
        "final_class_display": display_name(im.final_class) or None,
        "reviewed_by": im.reviewed_by, "overridden": im.overridden, "error": im.error,
        "flags": [str(r) for r in im.flags], "flag_sentences": [r.sentence for r in im.flags],
        "ood_score": im.ood_score,
    }


def image_from_dict(data: Mapping[str, Any]) -> ReviewedImage:
    """The inverse of :func:`image_to_dict`; a report written before reason codes gets codes
    derived from its ``ood_reason`` text."""
    needs_review = bool(data.get("needs_review", False))
    ood = bool(data.get("out_of_distribution", False))
    if "flags" in data:
        flags = tuple(data.get("flags") or ())
    elif data.get("status") == "ok":
        flags = codes_from_legacy(data.get("ood_reason"), needs_review=needs_review, out_of_distribution=ood)
    else:
        flags = ()
    name = data.get("file_name") or Path(data["path"]).name
    if data.get("status") not in STATUSES:
        raise ReportError(f"{name}: status must be one of {', '.join(STATUSES)}, got {data.get('status')!r}")
    try:
        return ReviewedImage(
            path=data["path"], file_name=name, status=data["status"], predicted_class=data.get("model_class"),
            confidence=None if data.get("confidence") is None else float(data["confidence"]),
            needs_review=needs_review, out_of_distribution=ood, final_class=data.get("final_class") or None,
            reviewed_by=data.get("reviewed_by"), error=data.get("error"), flags=flags,
            ood_score=None if data.get("ood_score") is None else float(data["ood_score"]))
    except ValueError as exc:  # an unknown flag code
        raise ReportError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class ReportModelInfo:
    """The model that classified the sample: identity, exact weights and preprocessing."""

    id: str
    version: str
    sha256: str
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "sha256": self.sha256,
                "preprocess": self.preprocess.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportModelInfo:
        return cls(id=data["id"], version=data["version"], sha256=data["sha256"],
                   preprocess=PreprocessConfig.from_dict(data.get("preprocess") or {}))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """Frozen structures back to JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _n_images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _verb(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def summarize_images(images: Iterable[ReviewedImage]) -> dict[str, Any]:
    """Counts per class and the sample-level call.

    Each successfully classified ("ok") image counts once, under the reviewer's final class when
    it has been reviewed and under the model's class otherwise; failed images are counted apart.
    The call and its rationale come from :func:`engine.core.summary.summarize`, the one call
    rule the GUI, the CLI and every export share.
    """
    from engine.core.summary import summarize

    images = list(images)
    ok = [im for im in images if im.ok]
    n_ok = len(ok)
    shared = summarize(images)
    summary: dict[str, Any] = {
        "n_images": shared.n_images,
        "n_ok": n_ok,
        "n_error": shared.n_error,
        "n_pending": shared.n_pending,
        "n_needs_review": sum(im.needs_review for im in ok),
        "n_needs_review_unreviewed": sum(im.needs_review and not im.reviewed for im in ok),
        "n_ood": sum(im.out_of_distribution for im in ok),
        "n_reviewed": sum(im.reviewed for im in ok),
        "n_overridden": sum(im.reviewed and im.overridden for im in ok),
        "n_excluded": shared.n_excluded,
        "n_classified": shared.n_classified,
        "n_withheld": shared.n_withheld,
        "n_unlike_training": shared.n_unlike_training,
        "acquisition_warning": shared.acquisition_warning,
        "counts": dict(shared.counts),
        "fractions": dict(shared.fractions),
        "call": f"{shared.call} (research use only)",
        "call_code": shared.call_code,
        "call_rationale": shared.rationale,
    }
    top = max(shared.counts.items(), key=lambda kv: kv[1]) if shared.n_classified else None
    given = shared.complete and not shared.call_code.startswith("INDETERMINATE")
    summary["call_class"] = top[0] if top and given else None
    return summary


# ============================================================================ from the store
def sample_report_from_store(store: Any, sample_id: str, *, card: Any = None, lab_name: str = "",
                             operator: str = "") -> SampleReport:
    """The :class:`SampleReport` of one stored sample, every image in stored order.

    With ``card`` (a :class:`~engine.models.card.ModelCard`): that model's predictions, and images
    it has not classified become rows with status ``pending`` (never dropped, never "failed"; the
    call is then "Incomplete"). Without: each image's latest prediction (images without one are
    pending), described by the latest model's id/version/sha256.
    """
    from engine.imaging.preprocess import PreprocessConfig

    sample = store.get_sample(sample_id)
    if sample is None:
        raise ReportError(f"no sample {sample_id!r} in the result history")
    records = store.predictions(sample_id, card.weights_sha256 if card is not None else None)
    if card is not None:
        model = ReportModelInfo(card.id, card.version, card.weights_sha256, card.preprocess)
    elif records:
        latest = records[-1]
        model = ReportModelInfo(latest.model_id, latest.model_version, latest.model_sha256, PreprocessConfig())
    else:
        raise ReportError(f"sample {sample_id} has not been classified yet: nothing to report")
    by_path = {r.path: r for r in records}
    images = []
    for im in store.images(sample_id):
        record = by_path.get(im.path)
        if record is None:
            images.append(ReviewedImage(im.path, ImageStatus.PENDING, file_name=im.file_name))
        else:
            images.append(record)
    return SampleReport(
        lab_name=lab_name, sample_id=sample.sample_id, patient_id=sample.patient_id,
        operator=sample.operator or operator, reviewer=sample.signed_off_by,
        signed_off_at=sample.signed_off_at, created_at=sample.created_at, images=tuple(images), model=model,
        sign_off_statement=getattr(sample, "sign_off_statement", None))


@dataclass(frozen=True)
class SampleReport:
    """Everything a sample report shows. ``summary`` is computed by :func:`summarize_images` when
    not given; keys given in ``summary`` override the computed ones (e.g. a reviewer's call)."""

    lab_name: str
    sample_id: str
    patient_id: str
    operator: str
    reviewer: str | None
    signed_off_at: str | None
    created_at: str
    images: tuple[ReviewedImage, ...]
    model: ReportModelInfo
    software_version: str = __version__
    #: Computed in ``__post_init__``; a mapping given here overrides the computed keys.
    summary: Mapping[str, Any] = field(default_factory=dict)
    #: The sentence the reviewer signed (``None`` while not signed off, or when the sign-off
    #: predates recorded statements).
    sign_off_statement: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(checked_image(im) for im in self.images))
        summary = summarize_images(self.images)
        if self.summary:
            summary.update(_plain(self.summary))
        object.__setattr__(self, "summary", _freeze(summary))

    @property
    def signed_off(self) -> bool:
        return bool(self.signed_off_at)

    def to_dict(self) -> dict[str, Any]:
        """The JSON export (schema ``allsight.sample-report/1``, see docs/report.md)."""
        return {
            "schema": JSON_SCHEMA,
            "notice": NOTICE,
            "software_version": self.software_version,
            "lab_name": self.lab_name,
            "sample_id": self.sample_id,
            "patient_id": self.patient_id,
            "operator": self.operator,
            "reviewer": self.reviewer,
            "created_at": self.created_at,
            "signed_off_at": self.signed_off_at,
            "sign_off_statement": self.sign_off_statement,
            "status": "final" if self.signed_off else "preliminary",
            "model": self.model.to_dict(),
            "summary": _plain(self.summary),
            "images": [image_to_dict(im) for im in self.images],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleReport:
        if data.get("schema") != JSON_SCHEMA:
            raise ReportError(f"not an ALLSight sample report (schema {data.get('schema')!r}, "
                              f"expected {JSON_SCHEMA!r})")
        return cls(
            lab_name=data["lab_name"], sample_id=data["sample_id"], patient_id=data["patient_id"],
            operator=data["operator"], reviewer=data.get("reviewer"),
            signed_off_at=data.get("signed_off_at"), created_at=data["created_at"],
            images=tuple(image_from_dict(d) for d in data["images"]),
            model=ReportModelInfo.from_dict(data["model"]),
            software_version=data.get("software_version", ""), summary=data.get("summary") or {},
            sign_off_statement=data.get("sign_off_statement"),  # absent in reports written before it existed
        )
