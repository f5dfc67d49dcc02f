"""The CSV and JSON exports of a sample report (and reading the JSON back)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from engine.core.errors import AllSightError
from engine.core.flags import (
    format_codes,
)
from engine.core.textsafe import csv_text
from engine.reports.files import atomic_write, os_reason
from engine.reports.sample import ReportError, SampleReport, display_name

log = logging.getLogger(__name__)


# ================================================================================ CSV / JSON
#: Columns of :func:`write_csv`, one row per image; the sample columns repeat on every row.
REPORT_CSV_COLUMNS: tuple[str, ...] = (
    "sample_id", "patient_id", "lab_name", "operator", "reviewer", "created_at", "signed_off_at",
    "report_status", "call", "model_id", "model_version", "model_sha256", "software_version",
    "index", "file_name", "path", "status", "model_class", "model_class_display", "confidence",
    "needs_review", "out_of_distribution", "final_class", "final_class_display", "reviewed_by",
    "overridden", "error", "flags", "preprocess_json",
)
#: The columns of :data:`REPORT_CSV_COLUMNS` that hold numbers, written as they are; every other
#: cell is text and goes through :func:`~engine.core.textsafe.csv_text` (no spreadsheet formula).
REPORT_CSV_NUMBERS: frozenset[str] = frozenset({"index", "confidence"})


def _csv_bool(value: bool) -> str:
    return "true" if value else "false"


def csv_rows(report: SampleReport) -> list[dict[str, str]]:
    """The CSV rows as dicts of strings (flags "true"/"false", missing values ""). Text cells
    starting with ``=``, ``+``, ``-``, ``@``, tab or CR get a leading ``'``
    (:func:`~engine.core.textsafe.csv_text`), so a spreadsheet shows them instead of running them."""
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
        rows.append({k: v if k in REPORT_CSV_NUMBERS else csv_text(v) for k, v in row.items()})
    return rows


def write_csv(report: SampleReport, path: str | Path) -> Path:
    """One row per image (UTF-8 with BOM so spreadsheet programs detect it), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(REPORT_CSV_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_rows(report))
    data = buf.getvalue().encode("utf-8-sig")
    return atomic_write(path, lambda fh: fh.write(data), "CSV export")


def write_json(report: SampleReport, path: str | Path) -> Path:
    """The whole report as JSON (schema ``allsight.sample-report/1``), atomically."""
    data = (json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), "JSON export")


def read_json(path: str | Path) -> SampleReport:
    """Read a report written by :func:`write_json`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"Cannot read the report {path}: {os_reason(exc)}") from exc
    except ValueError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc})") from exc
    try:
        return SampleReport.from_dict(data)
    except (KeyError, TypeError, AllSightError) as exc:
        raise ReportError(f"{path}: not a valid ALLSight sample report ({exc})") from exc
