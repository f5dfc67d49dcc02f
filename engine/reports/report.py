"""Sample reports: one patient's sample (a folder of images), reviewed and signed, as PDF, CSV,
JSON or an HL7 FHIR R4 bundle.

The input is plain data — :class:`SampleReport` holding one
:class:`~engine.core.records.ReviewedImage` per file (the record the store returns and the GUI
shows) and a :class:`ReportModelInfo` — so this module depends on neither the inference engine
nor the GUI.

Every writer is atomic: the file is written next to the target under a temporary name and
renamed into place, so a failure (full disk, cancellation, a bug) never leaves half a file and
never damages an existing report of the same name. File-system failures are raised as
:class:`ReportError` naming the path and the reason.

The PDF (:func:`write_pdf`) is built with ReportLab's platypus on A4. Thumbnails are made per row
while the page is drawn (64 px JPEGs in memory; the full-size image is dropped at once), so memory
stays bounded for samples of thousands of images. The schema of the JSON export is in
docs/report.md.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

import numpy as np

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS, __version__
from engine.core.errors import AllSightError, Cancelled
from engine.core.flags import (
    FlagReason,
    codes_from_legacy,
    format_codes,
    normalize,
    withholds_call,
)
from engine.core.records import EXCLUDED_CLASS, ImageStatus, ReviewedImage
from engine.imaging.preprocess import PreprocessConfig

log = logging.getLogger(__name__)

#: Identifies the JSON export format (bumped on incompatible changes).
JSON_SCHEMA = "allsight.sample-report/1"
#: Printed on every PDF page and carried in every export.
NOTICE = "Research use only \u2014 not a medical device."
#: Thumbnail size in pixels (JPEG in memory) and as drawn in the PDF (points; 1 pt = 1/72 in).
THUMB_PX = 64
THUMB_PT = 40.0
#: Longest error reason printed in the PDF (the exports keep the full text).
MAX_REASON_CHARS = 400

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
        raise ReportError(f"{name}: status must be 'ok' or 'error', got {data.get('status')!r}")
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
        "n_images": len(images),
        "n_ok": n_ok,
        "n_error": len(images) - n_ok,
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
    summary["call_class"] = top[0] if top and not shared.call_code.startswith("INDETERMINATE") else None
    return summary


# ============================================================================ from the store
def sample_report_from_store(store: Any, sample_id: str, *, card: Any = None, lab_name: str = "",
                             operator: str = "") -> SampleReport:
    """The :class:`SampleReport` of one stored sample, every image in stored order.

    With ``card`` (a :class:`~engine.models.checkpoint.ModelCard`): that model's predictions, and images
    it has not classified become failed rows saying so (never dropped). Without: each image's
    latest prediction, described by the latest model's id/version/sha256.
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
            images.append(ReviewedImage(im.path, ImageStatus.ERROR, file_name=im.file_name,
                                        error=f"not classified with model {model.id} {model.version}"))
        else:
            images.append(record)
    return SampleReport(
        lab_name=lab_name, sample_id=sample.sample_id, patient_id=sample.patient_id,
        operator=sample.operator or operator, reviewer=sample.signed_off_by,
        signed_off_at=sample.signed_off_at, created_at=sample.created_at, images=tuple(images), model=model)


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
        )


# ============================================================================ atomic writing
_OS_REASONS = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EACCES: "permission denied (the folder is not writable)",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the disk or folder is read-only",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENOENT: "the folder does not exist",
}
if hasattr(errno, "EDQUOT"):
    _OS_REASONS[errno.EDQUOT] = "the disk quota is exceeded"


def _os_reason(exc: OSError) -> str:
    return _OS_REASONS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__


def _atomic_write(path: str | Path, write: Callable[[BinaryIO], object], what: str = "report") -> Path:
    """Run ``write(fileobj)`` into a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ReportError(f"Cannot write the {what} to {path}: that path is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    except OSError as exc:
        raise ReportError(f"Cannot write the {what} to {path}: {_os_reason(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)  # mkstemp makes 0600 files; reports are meant to be shared
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ReportError(f"Cannot write the {what} to {path}: {_os_reason(exc)}") from exc
        raise
    return path


def _cancel_check(cancel: Any) -> Callable[[], None]:
    """Accept a CancelToken (``raise_if_cancelled``), a callable returning True, or None."""
    if cancel is None:
        return lambda: None
    if hasattr(cancel, "raise_if_cancelled"):
        return cancel.raise_if_cancelled

    def check() -> None:
        if cancel():
            raise Cancelled()

    return check


# ================================================================================ CSV / JSON
#: Columns of :func:`write_csv`, one row per image; the sample columns repeat on every row.
CSV_COLUMNS: tuple[str, ...] = (
    "sample_id", "patient_id", "lab_name", "operator", "reviewer", "created_at", "signed_off_at",
    "report_status", "call", "model_id", "model_version", "model_sha256", "software_version",
    "index", "file_name", "path", "status", "model_class", "model_class_display", "confidence",
    "needs_review", "out_of_distribution", "final_class", "final_class_display", "reviewed_by",
    "overridden", "error", "flags", "preprocess_json",
)


def _csv_bool(value: bool) -> str:
    return "true" if value else "false"


def csv_rows(report: SampleReport) -> list[dict[str, str]]:
    """The CSV rows as dicts of strings (flags "true"/"false", missing values "")."""
    sample = {
        "sample_id": report.sample_id, "patient_id": report.patient_id, "lab_name": report.lab_name,
        "operator": report.operator, "reviewer": report.reviewer or "", "created_at": report.created_at,
        "signed_off_at": report.signed_off_at or "",
        "report_status": "final" if report.signed_off else "preliminary",
        "call": str(report.summary.get("call", "")), "model_id": report.model.id,
        "model_version": report.model.version, "model_sha256": report.model.sha256,
        "software_version": report.software_version,
        "preprocess_json": json.dumps(report.model.preprocess.to_dict(), sort_keys=True,
                                      separators=(",", ":")),
    }
    rows = []
    for i, im in enumerate(report.images, 1):
        row = dict(sample)
        row.update({
            "index": str(i), "file_name": im.file_name, "path": str(im.path), "status": im.status,
            "model_class": im.predicted_class or "", "model_class_display": display_name(im.predicted_class),
            "confidence": "" if im.confidence is None else f"{im.confidence:.6f}",
            "needs_review": _csv_bool(im.needs_review),
            "out_of_distribution": _csv_bool(im.out_of_distribution),
            "final_class": im.final_class or "", "final_class_display": display_name(im.final_class),
            "reviewed_by": im.reviewed_by or "", "overridden": _csv_bool(im.overridden),
            "error": im.error or "", "flags": format_codes(im.flags),
        })
        rows.append(row)
    return rows


def write_csv(report: SampleReport, path: str | Path) -> Path:
    """One row per image (UTF-8 with BOM so spreadsheet programs detect it), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_rows(report))
    data = buf.getvalue().encode("utf-8-sig")
    return _atomic_write(path, lambda fh: fh.write(data), "CSV export")


def write_json(report: SampleReport, path: str | Path) -> Path:
    """The whole report as JSON (schema ``allsight.sample-report/1``), atomically."""
    data = (json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return _atomic_write(path, lambda fh: fh.write(data), "JSON export")


def read_json(path: str | Path) -> SampleReport:
    """Read a report written by :func:`write_json`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"Cannot read the report {path}: {_os_reason(exc)}") from exc
    except ValueError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc})") from exc
    try:
        return SampleReport.from_dict(data)
    except (KeyError, TypeError, AllSightError) as exc:
        raise ReportError(f"{path}: not a valid ALLSight sample report ({exc})") from exc


def write_fhir(report: SampleReport, path: str | Path) -> Path:
    """An HL7 FHIR R4 Bundle (see :mod:`engine.reports.fhir`), atomically."""
    from engine.reports.fhir import write_fhir as _write_fhir

    return _write_fhir(report, path)


# ======================================================================================= PDF
def _thumb_jpeg(rgb: np.ndarray, size: int = THUMB_PX) -> bytes:
    import cv2
    from PIL import Image

    rgb = np.ascontiguousarray(rgb[..., :3]) if rgb.ndim == 3 else np.stack([rgb] * 3, axis=-1)
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale != 1.0:
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=80)
    return out.getvalue()


class _RowImages:
    """The thumbnails of one row, made on first use (when the row is drawn) and then dropped."""

    __slots__ = ("_jpegs", "_left", "_notes", "check", "config", "heatmap_fn", "kinds", "path", "tick")

    def __init__(self, path: str | Path, config: PreprocessConfig, heatmap_fn, kinds: tuple[str, ...],
                 check: Callable[[], None], tick: Callable[[], None]):
        self.path, self.config, self.heatmap_fn, self.kinds = path, config, heatmap_fn, kinds
        self.check, self.tick = check, tick
        self._jpegs: dict[str, bytes] | None = None
        self._notes: dict[str, str] = {}
        self._left = 0

    def _make(self) -> None:
        from engine.imaging.preprocess import preprocess
        from engine.io.images import load_image

        self.check()
        jpegs: dict[str, bytes] = {}
        notes: dict[str, str] = {}
        if "original" in self.kinds or "masked" in self.kinds:
            try:
                stages = preprocess(load_image(self.path), self.config)
                for kind in ("original", "masked"):
                    if kind in self.kinds:
                        jpegs[kind] = _thumb_jpeg(getattr(stages, kind))
                del stages
            except AllSightError as exc:
                log.warning("report: no thumbnail for %s: %s", self.path, exc)
                notes["original"] = notes["masked"] = "unavailable"
        if "heatmap" in self.kinds:
            try:
                heat = self.heatmap_fn(self.path)
                if heat is None:
                    notes["heatmap"] = "\u2014"
                else:
                    jpegs["heatmap"] = _thumb_jpeg(np.asarray(heat))
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed heat map must not lose the report
                log.warning("report: no Grad-CAM for %s: %s", self.path, exc)
                notes["heatmap"] = "unavailable"
        self._jpegs, self._notes, self._left = jpegs, notes, len(self.kinds)
        self.tick()

    def take(self, kind: str) -> bytes | str:
        """JPEG bytes, or a short note to print instead."""
        if self._jpegs is None:
            self._make()
        assert self._jpegs is not None
        result: bytes | str = self._jpegs.get(kind) or self._notes.get(kind, "unavailable")
        self._left -= 1
        if self._left <= 0:  # every cell of the row is drawn: free the thumbnails
            self._jpegs, self._notes = None, {}
        return result


#: TrueType fonts (regular, bold) tried, in order, when a report holds text the PDF core fonts
#: cannot show (anything outside Windows-1252: Cyrillic, Greek, CJK names...). ``ALLSIGHT_REPORT_FONT``
#: (and optionally ``ALLSIGHT_REPORT_FONT_BOLD``) may name another TTF file.
_UNICODE_FONTS: list[tuple[str, str]] = [
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf"),
    (os.path.join(os.environ.get("WINDIR", r"C:\Windows"), "Fonts", "arial.ttf"),
     os.path.join(os.environ.get("WINDIR", r"C:\Windows"), "Fonts", "arialbd.ttf")),
    ("/System/Library/Fonts/Supplemental/Arial.ttf", "/System/Library/Fonts/Supplemental/Arial Bold.ttf"),
    ("/Library/Fonts/Arial Unicode.ttf", "/Library/Fonts/Arial Unicode.ttf"),
]
_font_lock = threading.Lock()
_registered_font: tuple[str, str] | None = None


@dataclass(frozen=True)
class _Fonts:
    regular: str = "Helvetica"
    bold: str = "Helvetica-Bold"
    #: Applied to every text: identity, or (core fonts) replace what they cannot show with "?".
    unicode: bool = False

    def fix(self, text: Any) -> str:
        text = str(text)
        if self.unicode:
            return text
        return text.encode("cp1252", "replace").decode("cp1252")


def _needs_unicode(report: SampleReport) -> bool:
    texts = [report.lab_name, report.sample_id, report.patient_id, report.operator, report.reviewer or "",
             report.signed_off_at or "", report.created_at, report.software_version, report.model.id,
             report.model.version, str(report.summary.get("call", "")),
             str(report.summary.get("call_rationale", ""))]
    for im in report.images:
        texts += [im.file_name, im.error or "", im.reviewed_by or ""]
    try:
        "\n".join(texts).encode("cp1252")
        return False
    except UnicodeEncodeError:
        return True


def _choose_fonts(report: SampleReport) -> _Fonts:
    """Core fonts (fast, nothing embedded) unless the report needs more; then a system TTF."""
    global _registered_font
    if not _needs_unicode(report):
        return _Fonts()
    with _font_lock:
        if _registered_font is None:
            from reportlab.lib.fonts import addMapping
            from reportlab.pdfbase import pdfmetrics
            from reportlab.pdfbase.ttfonts import TTFont

            env = os.environ.get("ALLSIGHT_REPORT_FONT")
            candidates = ([(env, os.environ.get("ALLSIGHT_REPORT_FONT_BOLD") or env)] if env else [])
            for regular, bold in candidates + _UNICODE_FONTS:
                if not os.path.isfile(regular):
                    continue
                try:
                    pdfmetrics.registerFont(TTFont("ALLSightSans", regular))
                    bold_file = bold if os.path.isfile(bold) else regular
                    pdfmetrics.registerFont(TTFont("ALLSightSans-Bold", bold_file))
                except Exception as exc:  # noqa: BLE001 - a broken font file: try the next one
                    log.warning("report: cannot use font %s: %s", regular, exc)
                    continue
                for bold_flag, italic, name in ((0, 0, "ALLSightSans"), (1, 0, "ALLSightSans-Bold"),
                                                (0, 1, "ALLSightSans"), (1, 1, "ALLSightSans-Bold")):
                    addMapping("ALLSightSans", bold_flag, italic, name)
                _registered_font = ("ALLSightSans", "ALLSightSans-Bold")
                break
            else:
                _registered_font = ("", "")
    if not _registered_font[0]:
        log.warning("report: no Unicode font found; characters outside Latin-1 are shown as '?'")
        return _Fonts()
    return _Fonts(*_registered_font, unicode=True)


def _pdf_classes(fonts: _Fonts):
    """ReportLab is imported lazily: only the PDF writer needs it."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas as rl_canvas
    from reportlab.platypus import Flowable

    class Thumb(Flowable):
        def __init__(self, row: _RowImages, kind: str):
            super().__init__()
            self.row, self.kind = row, kind

        def wrap(self, avail_width, avail_height):
            return THUMB_PT, THUMB_PT

        def draw(self):
            item = self.row.take(self.kind)
            c = self.canv
            if isinstance(item, bytes):
                c.drawImage(ImageReader(io.BytesIO(item)), 0, 0, THUMB_PT, THUMB_PT,
                            preserveAspectRatio=True, anchor="c")
            else:
                c.setFont(fonts.regular, 6.5)
                c.setFillGray(0.4)
                c.drawCentredString(THUMB_PT / 2, THUMB_PT / 2 - 2, item)

    def numbered_canvas(report: SampleReport, check: Callable[[], None]):
        header = fonts.fix(f"ALLSight sample report \u2014 sample {report.sample_id} "
                           f"\u2014 patient {report.patient_id}")

        class NumberedCanvas(rl_canvas.Canvas):
            """Defers each page so that the footer can say "Page X of Y"."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._pages: list[dict] = []

            def showPage(self):
                check()
                self._pages.append(dict(self.__dict__))
                self._startPage()

            def save(self):
                total = len(self._pages)
                for state in self._pages:
                    self.__dict__.update(state)
                    self._decorate(total)
                    super().showPage()
                self._pages = []
                super().save()

            def _decorate(self, total: int) -> None:
                from reportlab.lib.pagesizes import A4

                width, height = A4
                page = self._pageNumber
                self.saveState()
                self.setStrokeGray(0.6)
                self.setLineWidth(0.5)
                self.line(_MARGIN, 30, width - _MARGIN, 30)
                self.setFont(fonts.bold, 7.5)
                self.setFillGray(0.1)
                self.drawString(_MARGIN, 20, NOTICE)
                self.setFont(fonts.regular, 7.5)
                self.drawRightString(width - _MARGIN, 20, f"Page {page} of {total}")
                if page > 1:
                    self.setFillGray(0.35)
                    self.drawString(_MARGIN, height - 26, header)
                    self.line(_MARGIN, height - 30, width - _MARGIN, height - 30)
                self.restoreState()

        return NumberedCanvas

    return Thumb, numbered_canvas


_MARGIN = 36.0  # points (half an inch): where text starts
_FRAME_PAD = 6.0  # platypus frames pad their content by 6 pt


def _fmt_pct(fraction: float | None) -> str:
    return "" if fraction is None else f"{100.0 * fraction:.1f}%"


def _preprocess_text(cfg: PreprocessConfig) -> str:
    parts = []
    for name, value in cfg.to_dict().items():
        if name == "color_ranges":
            continue
        if isinstance(value, (tuple, list)):
            value = "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + ")"
        parts.append(f"{name}={value}")
    ranges = "; ".join(
        f"{r.name} " + " ".join(f"{ch}{lo}\u2013{hi}" for ch, lo, hi in zip("Lab", r.lower, r.upper, strict=False))
        for r in cfg.color_ranges
    )
    return ", ".join(parts) + (f"; LAB colour ranges: {ranges}" if ranges else "")


def _story(report: SampleReport, *, thumbnails: bool, heatmap_fn, check, tick, Thumb,
           fonts: _Fonts) -> list:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=fonts.regular, fontSize=8.5, leading=10.5,
                          spaceBefore=0, spaceAfter=0)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9)
    cell = ParagraphStyle("cell", parent=body, fontSize=7, leading=8.5)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=fonts.bold, fontSize=15, leading=18,
                        alignment=0, spaceAfter=2)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=fonts.bold, fontSize=10.5, leading=13,
                        spaceBefore=9, spaceAfter=4)
    grey = colors.Color(0.45, 0.45, 0.45)
    grid = colors.Color(0.75, 0.75, 0.75)
    head_bg = colors.Color(0.90, 0.92, 0.95)
    width = A4[0] - 2 * _MARGIN
    s = report.summary
    def E(text):
        return escape(fonts.fix(text))

    def P(text: str, style=cell) -> Paragraph:
        return Paragraph(text, style)

    story: list = []
    story.append(P(f"{E(report.lab_name)}", ParagraphStyle("lab", parent=body, fontSize=9, textColor=grey)))
    story.append(P("Sample report: B-ALL subtype screening", h1))
    story.append(P(f"<b>{E(NOTICE)}</b> The classification is a screening aid produced by software and "
                   "must be interpreted by a qualified person together with all other findings.", small))
    story.append(Spacer(1, 6))

    # ---------------------------------------------------------------- header fields
    status = "final (signed off)" if report.signed_off else "preliminary (not signed off)"
    pairs = [
        ("Lab", report.lab_name), ("Sample ID", report.sample_id),
        ("Patient ID", report.patient_id), ("Report status", status),
        ("Operator", report.operator), ("Reviewer", report.reviewer or "\u2014"),
        ("Created", report.created_at), ("Signed off", report.signed_off_at or "not signed off"),
        ("Report generated", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()),
        ("Images in sample", str(s.get("n_images", len(report.images)))),
    ]
    rows = []
    for i in range(0, len(pairs), 2):
        row = []
        for key, value in pairs[i:i + 2]:
            row += [P(f"<b>{E(key)}</b>", body), P(E(value), body)]
        rows.append(row)
    info = Table(rows, colWidths=[0.17 * width, 0.33 * width] * 2)
    info.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOX", (0, 0), (-1, -1), 0.5, grid),
        ("LINEBELOW", (0, 0), (-1, -2), 0.25, grid), ("BACKGROUND", (0, 0), (0, -1), head_bg),
        ("BACKGROUND", (2, 0), (2, -1), head_bg), ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]))
    story.append(info)

    # ---------------------------------------------------------------- summary
    story.append(P("Summary", h2))
    counts, fractions = s.get("counts", {}), s.get("fractions", {})
    srows = [[P("<b>Class</b>", body), P("<b>Images</b>", body), P("<b>Fraction</b>", body)]]
    for c in CLASS_IDS:
        bold = c == s.get("call_class")
        name = E(display_name(c))
        srows.append([P(f"<b>{name}</b>" if bold else name, body), str(counts.get(c, 0)),
                      _fmt_pct(fractions.get(c, 0.0))])
    # the images the fractions are over: not failed, excluded or withheld
    n_counted = int(s.get("n_classified", sum(counts.values())))
    srows.append([P("<b>Counted images</b>", body), str(n_counted), _fmt_pct(1.0 if n_counted else 0.0)])
    ctable = Table(srows, colWidths=[0.25 * width, 0.09 * width, 0.1 * width])
    ctable.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), fonts.regular, 8.5), ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, grid),
        ("BACKGROUND", (0, 0), (-1, 0), head_bg), ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    unreviewed = s.get("n_needs_review_unreviewed", 0)
    flags = [
        ("Images needing review", f"{s.get('n_needs_review', 0)}"
         + (f" ({unreviewed} not yet reviewed)" if s.get("n_needs_review") else "")),
        ("Out-of-distribution images", str(s.get("n_ood", 0))),
        ("Not counted until reviewed", str(s.get("n_withheld", 0))),
        ("Failed images (not counted)", str(s.get("n_error", 0))),
        ("Reviewed by a person", f"{s.get('n_reviewed', 0)} ({s.get('n_overridden', 0)} overridden)"),
    ]
    call_style = ParagraphStyle("call", parent=body, fontSize=9.5, leading=12)
    right: list = []
    warning = s.get("acquisition_warning")
    if warning:  # one prominent line, above the call it withholds
        red = colors.Color(0.72, 0.11, 0.11)
        warn_style = ParagraphStyle("warning", parent=body, fontName=fonts.bold, fontSize=10, leading=12.5,
                                    textColor=red, borderColor=red, borderWidth=0.75, borderPadding=3,
                                    backColor=colors.Color(1.0, 0.93, 0.93))
        right += [P(f"{E(warning)}.", warn_style), Spacer(1, 7)]
    right += [P(f"<b>Call:</b> {E(s.get('call', ''))}", call_style),
              Spacer(1, 3), P(E(s.get("call_rationale", "")), small), Spacer(1, 5)]
    ftable = Table([[P(E(k), small), P(f"<b>{E(v)}</b>", small)] for k, v in flags],
                   colWidths=[0.27 * width, 0.25 * width])
    ftable.setStyle(TableStyle([
        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("LINEBELOW", (0, 0), (-1, -1), 0.25, grid),
    ]))
    right.append(ftable)
    outer = Table([[ctable, right]], colWidths=[0.46 * width, 0.54 * width])
    outer.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
    story.append(outer)

    # ---------------------------------------------------------------- model
    story.append(P("Model and software", h2))
    m = report.model
    mrows = [
        [P("<b>Model</b>", small), P(f"{E(m.id)}, version {E(m.version)}", small)],
        [P("<b>Weights SHA-256</b>", small), P(f'<font face="Courier">{E(m.sha256)}</font>', small)],
        [P("<b>Preprocessing</b>", small), P(E(_preprocess_text(m.preprocess)), small)],
        [P("<b>Software</b>", small), P(f"ALLSight {E(report.software_version)}", small)],
    ]
    mt = Table(mrows, colWidths=[0.17 * width, 0.83 * width])
    mt.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, grid),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    story.append(mt)

    # ---------------------------------------------------------------- images
    story.append(P(f"Images ({len(report.images)})", h2))
    kinds: list[str] = []
    if thumbnails:
        kinds += ["original", "masked", "heatmap"]
    elif heatmap_fn is not None:
        kinds += ["heatmap"]
    make_kinds = tuple(k for k in kinds if k != "heatmap" or heatmap_fn is not None)
    thumb_titles = {"original": "Image", "masked": "Masked", "heatmap": "Grad-CAM"}
    fixed = {"#": 22.0, "Model class": 74.0, "Conf.": 36.0, "Reviewer's class": 100.0, "Flags": 50.0}
    thumb_w = THUMB_PT + 6
    file_w = width - sum(fixed.values()) - thumb_w * len(kinds)
    tail = ["Model class", "Conf.", "Reviewer's class", "Flags"]
    columns = ["#", "File"] + [thumb_titles[k] for k in kinds] + tail
    widths = [fixed["#"], file_w] + [thumb_w] * len(kinds) + [fixed[c] for c in columns[2 + len(kinds):]]
    head = ParagraphStyle("head", parent=cell, fontName=fonts.bold)
    data: list[list] = [[P(E(c), head) for c in columns]]
    style: list = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, grid),
        ("BACKGROUND", (0, 0), (-1, 0), head_bg), ("FONT", (0, 0), (-1, -1), fonts.regular, 7),
        ("ALIGN", (0, 0), (0, -1), "RIGHT"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if kinds:
        first, last = 2, 1 + len(kinds)
        style += [("ALIGN", (first, 1), (last, -1), "CENTER"), ("LEFTPADDING", (first, 1), (last, -1), 2),
                  ("RIGHTPADDING", (first, 1), (last, -1), 2)]
    conf_col = 2 + len(kinds) + 1
    style.append(("ALIGN", (conf_col, 1), (conf_col, -1), "RIGHT"))
    review_bg = colors.Color(1.0, 0.97, 0.85)
    error_bg = colors.Color(1.0, 0.91, 0.91)
    dash = "\u2014"
    seen_flags: set[FlagReason] = set()
    for i, im in enumerate(report.images, 1):
        r = len(data)
        name = P(E(im.file_name), cell)
        if not im.ok:
            reason = im.error or "unknown error"
            if len(reason) > MAX_REASON_CHARS:
                reason = reason[:MAX_REASON_CHARS] + "\u2026"
            verdict = f" \u2014 excluded by {E(im.reviewed_by or 'the reviewer')}" if im.final_class == EXCLUDED_CLASS else ""
            data.append([str(i), name, P(f"<b>Failed \u2014 not classified:</b> {E(reason)}{verdict}", cell)]
                        + [""] * (len(columns) - 3))
            style += [("SPAN", (2, r), (-1, r)), ("BACKGROUND", (0, r), (-1, r), error_bg)]
            continue
        thumbs: list = []
        if kinds:
            row_images = _RowImages(im.path, report.model.preprocess, heatmap_fn, make_kinds, check, tick) \
                if make_kinds else None
            for k in kinds:
                thumbs.append(Thumb(row_images, k) if k in make_kinds else dash)
        if im.reviewed:
            verb = "overridden" if im.overridden else "confirmed"
            by = f" by {E(im.reviewed_by)}" if im.reviewed_by else ""
            final = P(f"<b>{E(display_name(im.final_class))}</b><br/>{verb}{by}", cell)
        else:
            final = P('<font color="#777777">not reviewed</font>', cell)
        # Short labels only (the legend below the table has the sentences); never the distance.
        marks = [E(r.label) for r in im.flags]
        if not marks:
            if im.out_of_distribution:
                marks.append("out of distribution")
            elif im.needs_review:
                marks.append("needs review")
        if (withholds_call(im.flags) or im.out_of_distribution) and not im.reviewed:
            marks.append("<i>not counted</i>")
        seen_flags.update(im.flags)
        data.append([str(i), name, *thumbs, P(E(display_name(im.predicted_class)), cell),
                     _fmt_pct(im.confidence) or dash, final, P("<br/>".join(marks) or dash, cell)])
        if im.needs_review or im.out_of_distribution:
            style.append(("BACKGROUND", (0, r), (-1, r), review_bg))
    if len(data) == 1:
        data.append(["", P("No images in this sample.", cell)] + [""] * (len(columns) - 2))
        style.append(("SPAN", (1, 1), (-1, 1)))
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle(style))
    story.append(table)
    if seen_flags:
        legend = "<br/>".join(f"<b>{E(r.label)}</b>: {E(r.sentence)}." for r in normalize(seen_flags))
        story.append(Spacer(1, 4))
        story.append(P("<b>Flags.</b> An image flagged as one the model cannot judge is not counted "
                       "in the summary until a person has reviewed it.<br/>" + legend, small))

    # ---------------------------------------------------------------- signature
    if report.signed_off:
        signed = (f"Reviewed and signed off by <b>{E(report.reviewer or dash)}</b> "
                  f"on <b>{E(report.signed_off_at)}</b>.")
    else:
        signed = ("<b>Not signed off.</b> This is a preliminary result"
                  + (f"; reviewer: {E(report.reviewer)}." if report.reviewer else "."))
    sig_rows = [
        [P("<b>Reviewed / signed by</b>", body), P(E(report.reviewer or ""), body),
         P("<b>Date</b>", body), P(E(report.signed_off_at or ""), body)],
        [P("<b>Signature</b>", body), "", "", ""],
    ]
    sig = Table(sig_rows, colWidths=[0.22 * width, 0.38 * width, 0.1 * width, 0.3 * width],
                rowHeights=[None, 34])
    sig.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, 0), "TOP"), ("VALIGN", (0, 1), (-1, 1), "BOTTOM"),
        ("LINEBELOW", (1, 0), (1, 0), 0.5, grey), ("LINEBELOW", (3, 0), (3, 0), 0.5, grey),
        ("LINEBELOW", (1, 1), (-1, 1), 0.75, colors.black), ("SPAN", (1, 1), (-1, 1)),
    ]))
    story.append(KeepTogether([P("Review and sign-off", h2), P(signed, body), Spacer(1, 6), sig,
                               Spacer(1, 6), P(E(NOTICE), small)]))
    return story


def write_pdf(report: SampleReport, path: str | Path, *, thumbnails: bool = True,
              heatmap_fn: Callable[[Path], np.ndarray | None] | None = None, cancel: Any = None,
              progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the sample report as an A4 PDF, atomically; returns ``path``.

    ``thumbnails``: show each image and its masked version (made with the model's own
    preprocessing). ``heatmap_fn(path)`` returns a Grad-CAM overlay (RGB uint8, any size) for the
    Grad-CAM column; without it the column shows "—". ``cancel``: a ``CancelToken`` or a callable
    returning True to stop (raises :class:`~engine.core.errors.Cancelled`; nothing is written).
    ``progress(done, total)`` is called as rows with thumbnails are drawn.
    Raises :class:`ReportError` when the file cannot be written.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate

    if not isinstance(report, SampleReport):
        raise ReportError(f"write_pdf needs a SampleReport, got {type(report).__name__}")
    check = _cancel_check(cancel)
    check()
    fonts = _choose_fonts(report)
    Thumb, numbered_canvas = _pdf_classes(fonts)
    total = sum(im.ok for im in report.images) if (thumbnails or heatmap_fn) else 0
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    def render(fh: BinaryIO) -> None:
        doc = SimpleDocTemplate(
            fh, pagesize=A4, leftMargin=_MARGIN - _FRAME_PAD, rightMargin=_MARGIN - _FRAME_PAD,
            topMargin=_MARGIN - 2, bottomMargin=_MARGIN + 2,
            title=f"ALLSight sample report {report.sample_id}", author=report.lab_name,
            subject=f"Sample {report.sample_id}, patient {report.patient_id}. {NOTICE}",
            creator=f"ALLSight {report.software_version}",
        )
        story = _story(report, thumbnails=thumbnails, heatmap_fn=heatmap_fn, check=check, tick=tick,
                       Thumb=Thumb, fonts=fonts)
        doc.build(story, canvasmaker=numbered_canvas(report, check))

    return _atomic_write(path, render, "PDF report")


__all__ = [
    "CSV_COLUMNS", "JSON_SCHEMA", "NOTICE", "ReportError", "ReportModelInfo",
    "SampleReport", "csv_rows", "display_name", "read_json", "checked_image", "image_from_dict", "image_to_dict",
    "sample_report_from_store", "summarize_images", "write_csv",
    "write_fhir", "write_json", "write_pdf",
]

