"""Row-level pieces every operation of the result store shares, each run on the connection of the
caller's transaction: the timestamp format, the audit entry written with every change, the
``updated_at`` stamp, the refusal to change a signed-off sample, and inserting an image row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from engine.store.audit import append_many
from engine.store.changes import NOTIFY_CHANNEL
from engine.store.database import POSTGRESQL, Conn, Row
from engine.store.errors import SignOffError, StoreError
from engine.store.identity import FileState
from engine.store.records import Sample

#: The class a withdrawn review is stored with (the reviews table keeps every row; the latest
#: one decides, and this one means "not reviewed").
WITHDRAWN_REVIEW = ""

#: The ``samples`` columns (table alias ``s``) of a :class:`Sample`, in its field order.
SAMPLE_COLUMNS = ("s.sample_id, s.folder, s.patient_id, s.operator, s.created_at, s.updated_at, "
                  "s.signed_off_by, s.signed_off_at, "
                  "(SELECT COUNT(*) FROM images WHERE sample_pk = s.pk), s.sign_off_statement")


def now() -> str:
    """The current time as stored: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def required(value: str | None, what: str) -> str:
    """``value`` stripped; :class:`StoreError` when that leaves nothing."""
    text = (value or "").strip()
    if not text:
        raise StoreError(f"{what} must not be empty")
    return text


def to_sample(row: Row | tuple) -> Sample:
    """A row selected with :data:`SAMPLE_COLUMNS` as a :class:`Sample`."""
    return Sample(*row)


def audit(conn: Conn, actor: str, action: str, sample_pk: int | None,
          image_pk: int | None = None, **details: Any) -> None:
    """Append one chained audit entry, in the caller's transaction. On PostgreSQL the other
    workstations are told too (:mod:`engine.store.changes`): the notification is sent at commit,
    once per transaction and sample, and never if the transaction rolls back."""
    audit_many(conn, actor, [(action, sample_pk, image_pk, details)])


def audit_many(conn: Conn, actor: str, entries: Sequence[tuple[str, int | None, int | None, dict[str, Any]]]) -> None:
    """:func:`audit` for many entries ``(action, sample_pk, image_pk, details)``, in order, with one
    ``executemany`` and one timestamp, and one notification per sample they are about."""
    ts, actor = now(), actor or ""
    append_many(conn, [(ts, actor, action, sample_pk, image_pk, json.dumps(details, sort_keys=True, default=str))
                       for action, sample_pk, image_pk, details in entries])
    if conn.dialect == POSTGRESQL:
        for sample_pk in dict.fromkeys(e[1] for e in entries):
            conn.execute("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, "" if sample_pk is None else str(sample_pk)))


def refuse_if_signed(row: Row, what: str) -> None:
    """:class:`SignOffError` when the sample ``row`` is signed off: nothing about it may change
    (``what`` says what was refused) until it is reopened."""
    if row["signed_off_at"] is not None:
        raise SignOffError(
            f"sample {row['sample_id']!r} was signed off by {row['signed_off_by']} at "
            f"{row['signed_off_at']}; reopen it before {what}")


def touch(conn: Conn, sample_pk: int) -> None:
    conn.execute("UPDATE samples SET updated_at = ? WHERE pk = ?", (now(), sample_pk))


def insert_image(conn: Conn, sample_pk: int, path: str, state: FileState) -> int | None:
    """Insert if absent, after the sample's last image; returns the new pk, or None when the path
    was already there."""
    position = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM images WHERE sample_pk = ?",
                            (sample_pk,)).fetchone()[0]
    row = conn.execute(
        "INSERT INTO images (sample_pk, path, file_name, sha256, size, mtime_ns, position, added_at) "
        "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (sample_pk, path) DO NOTHING RETURNING pk",
        (sample_pk, path, os.path.basename(path), state.sha256, state.size, state.mtime_ns, position, now())).fetchone()
    return None if row is None else int(row[0])


def insert_images(conn: Conn, sample_pk: int, new: list[tuple[str, FileState]]) -> int:
    """:func:`insert_image` for many, in order, with one ``executemany`` (a lab database's round
    trip per image was most of planning a large sample); returns how many were inserted (a path
    already there is left alone)."""
    if not new:
        return 0
    count = "SELECT COUNT(*), COALESCE(MAX(position), -1) + 1 FROM images WHERE sample_pk = ?"
    before, position = conn.execute(count, (sample_pk,)).fetchone()
    added_at = now()
    conn.executemany(
        "INSERT INTO images (sample_pk, path, file_name, sha256, size, mtime_ns, position, added_at) "
        "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (sample_pk, path) DO NOTHING",
        [(sample_pk, path, os.path.basename(path), state.sha256, state.size, state.mtime_ns, position + i, added_at)
         for i, (path, state) in enumerate(new)])
    return int(conn.execute(count, (sample_pk,)).fetchone()[0]) - int(before)


__all__ = ["SAMPLE_COLUMNS", "WITHDRAWN_REVIEW", "audit", "audit_many", "insert_image", "insert_images", "now", "refuse_if_signed", "required",
           "to_sample", "touch"]
