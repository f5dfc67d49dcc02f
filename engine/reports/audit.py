"""The audit trail as a file a lab can hand over: CSV or JSON, one writer for the CLI
(``audit export``) and the app's audit view.

Each entry is written with its time (UTC, as stored, and in this computer's local time), the
user, the action, the sample, the image's file name and path, its details (the stored JSON, and
in plain words: :func:`describe_entry`) and its two chain hashes; the JSON also carries the
result of checking the chain (:class:`~engine.store.audit.AuditCheck`) and the filters used.
CSV text cells go through :func:`~engine.core.textsafe.csv_text` (no spreadsheet formulas).
Both are written atomically (:func:`~engine.reports.files.atomic_write`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import __version__
from engine.core.textsafe import csv_text
from engine.reports.files import atomic_write
from engine.reports.sample import ReportError
from engine.store.audit import AuditCheck
from engine.store.results import AuditEntry

JSON_SCHEMA = "allsight.audit-export/1"

#: The CSV's columns, in order.
CSV_COLUMNS: tuple[str, ...] = ("entry", "time_utc", "time_local", "user", "action", "sample_id", "image_file",
                                "image_path", "description", "details", "prev_hash", "entry_hash")

#: Actions in words (an unknown action is shown as it is).
ACTION_LABELS: dict[str, str] = {
    "create_sample": "Sample created",
    "update_sample": "Sample edited",
    "add_images": "Images added",
    "image_changed": "Image file changed",
    "record_prediction": "Classified",
    "record_review": "Reviewed",
    "withdraw_review": "Review withdrawn",
    "sign_off": "Signed off",
    "reopen": "Reopened",
    "publish_lab_model": "Model shared with the lab",
    "activate_lab_model": "Lab's model changed",
    "lab_database_changed": "Workstation's database changed",
}

FORMATS = (".csv", ".json")


def local_time(entry: AuditEntry) -> str:
    """The entry's time in this computer's time zone, with the zone ("2026-12-01 14:32:05 CET")."""
    when = entry.time
    if when is None:
        return entry.ts
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "none"


def describe_entry(entry: AuditEntry) -> str:
    """The entry's details in plain words (one line)."""
    d: Mapping[str, Any] = entry.details
    action = entry.action
    if action == "create_sample":
        parts = [f"folder {d.get('folder') or '(files from several folders)'}"]
        if d.get("patient_id"):
            parts.append(f"patient {d['patient_id']}")
        if d.get("operator"):
            parts.append(f"operator {d['operator']}")
        return ", ".join(parts)
    if action == "update_sample":
        changes = d.get("changes") or {}
        return "; ".join(f"{k.replace('_', ' ')}: {v[0]!r} \u2192 {v[1]!r}" for k, v in changes.items()
                         if isinstance(v, list | tuple) and len(v) == 2) or "no change"
    if action == "add_images":
        return f"{d.get('count', '?')} image(s) added"
    if action == "image_changed":
        return f"content changed from {_short(d.get('old_sha256'))} to {_short(d.get('sha256'))}"
    if action == "record_prediction":
        model = f"{d.get('model_id') or '?'} {d.get('model_version') or ''}".strip()
        if d.get("status") == "ok":
            return f"{d.get('predicted_class') or '?'} by model {model}"
        return f"failed ({d.get('status')}) with model {model}"
    if action == "record_review":
        text = f"{d.get('final_class')} (model: {d.get('model_class')})"
        if d.get("overridden"):
            text += ", class changed"
        return text + (f"; note: {d['note']}" if d.get("note") else "")
    if action == "withdraw_review":
        return "review withdrawn" + (f"; note: {d['note']}" if d.get("note") else "")
    if action == "sign_off":
        text = f"call: {d.get('call', '?')}; {d.get('n_reviewed', '?')} of {d.get('n_images', '?')} image(s) reviewed"
        if d.get("statement"):
            text += f"; statement: \u201c{d['statement']}\u201d"
        return text
    if action == "reopen":
        return (f"reason: {d.get('reason', '')}; had been signed off by {d.get('was_signed_off_by', '?')} "
                f"at {d.get('was_signed_off_at', '?')}")
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items()))


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "entry": entry.pk, "time_utc": entry.ts, "time_local": local_time(entry), "user": entry.actor,
        "action": entry.action, "sample_id": entry.sample_id, "image_file": entry.file_name or None,
        "image_path": entry.path, "description": describe_entry(entry), "details": entry.details,
        "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash,
    }


def audit_csv(entries: Iterable[AuditEntry]) -> bytes:
    """The CSV bytes (UTF-8 with a BOM so spreadsheets read the accents)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = _row(entry)
        cells = []
        for column in CSV_COLUMNS:
            value = row[column]
            if column == "details":
                value = json.dumps(value, sort_keys=True, ensure_ascii=False)
            cells.append(value if isinstance(value, int) else csv_text("" if value is None else str(value)))
        writer.writerow(cells)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def audit_json(entries: Iterable[AuditEntry], *, check: AuditCheck | None = None, database: str = "",
               filters: Mapping[str, Any] | None = None) -> bytes:
    """The JSON bytes: ``{"schema", "software_version", "database", "exported_at", "check",
    "filters", "entries": [...]}``."""
    doc = {
        "schema": JSON_SCHEMA,
        "software_version": __version__,
        "database": database,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "check": None if check is None else {
            "ok": check.ok, "n_entries": check.n_entries, "first_bad_entry": check.first_bad_pk,
            "reason": check.reason, "full": check.full, "last_hash": check.last_hash},
        "filters": {k: v for k, v in (filters or {}).items() if v is not None},
        "entries": [_row(e) for e in entries],
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_audit(entries: Iterable[AuditEntry], path: str | Path, *, check: AuditCheck | None = None,
                database: str = "", filters: Mapping[str, Any] | None = None) -> Path:
    """Write the entries to ``path`` as CSV or JSON (by its suffix), atomically. Raises
    :class:`ReportError` for another suffix or when the file cannot be written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        data = audit_csv(entries)
    elif suffix == ".json":
        data = audit_json(entries, check=check, database=database, filters=filters)
    else:
        raise ReportError(f"{path}: the audit export is written as .csv or .json, not {suffix or 'no suffix'}")
    return atomic_write(path, lambda fh: fh.write(data), "audit export")


__all__ = ["ACTION_LABELS", "CSV_COLUMNS", "FORMATS", "JSON_SCHEMA", "action_label", "audit_csv", "audit_json",
           "describe_entry", "local_time", "write_audit"]
