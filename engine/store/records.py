"""The records the result store hands out: a :class:`Sample`, its :class:`ImageRecord` rows and
the :class:`AuditEntry` rows of its history. Frozen: a record is a snapshot of the database at
the time of the call, never a live view of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One sample (a patient's folder of images). Timestamps are ISO 8601 UTC strings."""

    sample_id: str
    folder: str
    patient_id: str
    operator: str
    created_at: str
    updated_at: str
    signed_off_by: str | None
    signed_off_at: str | None
    n_images: int = 0
    #: The sentence the reviewer signed (``None`` while not signed off, and for a sample signed
    #: off before schema 4, which did not record it).
    sign_off_statement: str | None = None

    @property
    def signed_off(self) -> bool:
        return self.signed_off_at is not None


@dataclass(frozen=True)
class ImageRecord:
    """One image of a sample. ``sha256`` is ``None`` when the file was unreadable (or not a
    regular file, or over :data:`engine.store.identity.MAX_HASHED_FILE_BYTES`); ``size``/``mtime_ns``
    (nanoseconds) are ``None`` when it was missing or not a regular file. They describe the content
    the sample's current results belong to."""

    sample_id: str
    path: str
    file_name: str
    sha256: str | None
    size: int | None
    position: int
    added_at: str
    mtime_ns: int | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One audit-log row. ``sample_id`` is the sample's *current* id (it follows renames);
    ``prev_hash``/``entry_hash`` are its links in the chain (:mod:`engine.store.audit`)."""

    pk: int
    ts: str
    actor: str
    action: str
    sample_id: str | None
    path: str | None
    details: dict[str, Any]
    prev_hash: str | None = None
    entry_hash: str | None = None

    @property
    def file_name(self) -> str:
        """The image's file name ("" for an entry about no single image)."""
        return os.path.basename(self.path) if self.path else ""

    @property
    def time(self) -> datetime | None:
        """``ts`` as an aware datetime (``None`` if it is not a timestamp)."""
        try:
            when = datetime.fromisoformat(self.ts)
        except (TypeError, ValueError):
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


__all__ = ["AuditEntry", "ImageRecord", "Sample"]
