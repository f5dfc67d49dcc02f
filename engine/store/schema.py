"""The result database's schema and its migrations (``PRAGMA user_version``).

:func:`migrate` brings a database of any older version up to :data:`SCHEMA_VERSION`, one step
of :data:`MIGRATIONS` at a time, each inside a transaction; a file written by a newer ALLSight is
refused with a :class:`~engine.store.errors.StoreError` rather than guessed at.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from engine.core.flags import codes_from_legacy, format_codes
from engine.store.errors import StoreError

log = logging.getLogger(__name__)

#: The schema version this code writes (stored as ``PRAGMA user_version``).
#: 1: first schema; 2: ``predictions.flags`` (reason codes, see :mod:`engine.core.flags`).
SCHEMA_VERSION = 2


_SCHEMA_V1 = """
CREATE TABLE samples (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id     TEXT NOT NULL UNIQUE,
    folder        TEXT NOT NULL,
    patient_id    TEXT NOT NULL DEFAULT '',
    operator      TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    signed_off_by TEXT,
    signed_off_at TEXT
);
CREATE TABLE images (
    pk        INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_pk INTEGER NOT NULL REFERENCES samples(pk),
    path      TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256    TEXT,
    size      INTEGER,
    position  INTEGER NOT NULL,
    added_at  TEXT NOT NULL,
    UNIQUE (sample_pk, path)
);
CREATE INDEX images_by_sample_position ON images(sample_pk, position);
CREATE TABLE predictions (
    pk                  INTEGER PRIMARY KEY AUTOINCREMENT,
    image_pk            INTEGER NOT NULL REFERENCES images(pk),
    model_id            TEXT NOT NULL,
    model_version       TEXT NOT NULL,
    model_sha256        TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    predicted_class     TEXT,
    confidence          REAL,
    probabilities       TEXT,
    needs_review        INTEGER NOT NULL DEFAULT 0,
    out_of_distribution INTEGER NOT NULL DEFAULT 0,
    ood_score           REAL,
    ood_reason          TEXT NOT NULL DEFAULT '',
    error               TEXT,
    created_at          TEXT NOT NULL,
    UNIQUE (image_pk, model_sha256)
);
CREATE TABLE reviews (
    pk          INTEGER PRIMARY KEY AUTOINCREMENT,
    image_pk    INTEGER NOT NULL REFERENCES images(pk),
    reviewer    TEXT NOT NULL,
    final_class TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);
CREATE INDEX reviews_by_image ON reviews(image_pk);
CREATE TABLE audit_log (
    pk        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    sample_pk INTEGER REFERENCES samples(pk),
    image_pk  INTEGER REFERENCES images(pk),
    details   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_sample ON audit_log(sample_pk);
"""


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """Version 0 is an empty file: create the first schema."""
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 2 stores the reason codes (``predictions.flags``, ``;``-joined). Version-1 rows
    get codes derived from their free-text ``ood_reason`` (:func:`engine.core.flags.codes_from_legacy`);
    the old column stays (SQLite keeps it; new rows leave it empty)."""
    conn.execute("ALTER TABLE predictions ADD COLUMN flags TEXT NOT NULL DEFAULT ''")
    rows = conn.execute("SELECT pk, ood_reason, needs_review, out_of_distribution FROM predictions "
                        "WHERE status = 'ok'").fetchall()
    updates = []
    for pk, reason, needs_review, ood in rows:
        codes = format_codes(codes_from_legacy(reason, needs_review=bool(needs_review),
                                               out_of_distribution=bool(ood)))
        if codes:
            updates.append((codes, pk))
    conn.executemany("UPDATE predictions SET flags = ? WHERE pk = ?", updates)


#: ``MIGRATIONS[v]`` upgrades a version-``v`` database to ``v + 1``, inside a transaction.
#: A future schema change adds ``MIGRATIONS[2] = _migrate_2_to_3`` and bumps SCHEMA_VERSION.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_0_to_1, 1: _migrate_1_to_2}


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring ``conn``'s database up to ``target``, one committed step per version.

    Returns the version found before migrating. Raises :class:`StoreError` for a newer schema.
    Each step re-reads the version inside its own ``BEGIN IMMEDIATE`` so two processes opening
    an old file at once do not migrate it twice.
    """
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > target:
        raise StoreError(
            f"the result database uses schema version {found}, written by a newer ALLSight; this "
            f"version understands up to {target}. Update ALLSight or choose another database file.")
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= target:
                conn.execute("COMMIT")
                break
            step = MIGRATIONS.get(version)
            if step is None:
                raise StoreError(f"no migration from result-database schema version {version}")
            log.info("migrating result database from schema %d to %d", version, version + 1)
            step(conn)
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return found
