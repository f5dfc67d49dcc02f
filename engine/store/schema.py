"""The result database's schema and its migrations (``PRAGMA user_version``).

:func:`migrate` brings a database of any older version up to :data:`SCHEMA_VERSION`, one step
of :data:`MIGRATIONS` at a time, each inside a transaction; a file written by a newer ALLSight is
refused with a :class:`~engine.store.errors.StoreError` rather than guessed at.

Since schema 3 an ALLSight database carries :data:`APPLICATION_ID` in its header
(``PRAGMA application_id``), so that :func:`recognise` can tell it from another application's
SQLite file *before* anything is written to it (:class:`engine.store.results.ResultStore` refuses
such a file unchanged).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

from engine.core.flags import codes_from_legacy, format_codes
from engine.store.audit import chain_existing
from engine.store.errors import StoreError

log = logging.getLogger(__name__)

#: The schema version this code writes (stored as ``PRAGMA user_version``).
#: 1: first schema; 2: ``predictions.flags`` (reason codes, see :mod:`engine.core.flags`);
#: 3: the file's identity (``images.mtime_ns``), the content each prediction and review was made
#: for (``predictions.image_sha256``, ``reviews.image_sha256``), several predictions per image and
#: model (retries, replaced files), and :data:`APPLICATION_ID`; 4: the hash-chained, append-only
#: audit log (``audit_log.prev_hash``/``entry_hash``, ``audit_head``, triggers: :mod:`engine.store.audit`)
#: and the sign-off statement (``samples.sign_off_statement``); 5: named accounts (``accounts``,
#: passwords Argon2id-hashed) and the lab's policy (``lab_policy``): :mod:`engine.store.accounts`;
#: 6: classification leases (``sample_leases``): :mod:`engine.store.leases`; 7: the lab's shared models
#: (``lab_models``, ``lab_model_files``, ``lab_active_model``): :mod:`engine.store.lab_models`.
SCHEMA_VERSION = 7

#: ``PRAGMA application_id`` of an ALLSight result database (since schema 3): "ALLS" in ASCII.
APPLICATION_ID = 0x414C4C53

#: The tables every ALLSight result database has (schema 1 and later): how a file written before
#: :data:`APPLICATION_ID` existed is recognised.
TABLES: frozenset[str] = frozenset({"samples", "images", "predictions", "reviews", "audit_log"})


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
    """Version 0 is an empty file: create the first schema.

    The file was recognised as empty before it was opened for writing; this checks again inside
    the transaction (another process may have written to it since), so that nothing is ever
    created inside another application's database."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name LIMIT 6")]
    if names:
        raise StoreError(f"not an ALLSight result database: it already holds {_list_names(names)}; "
                         "it was left unchanged")
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


_PREDICTIONS_V3 = """
CREATE TABLE predictions_v3 (
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
    flags               TEXT NOT NULL DEFAULT '',
    image_sha256        TEXT
)
"""

_PREDICTION_COLUMNS = ("pk, image_pk, model_id, model_version, model_sha256, status, predicted_class, confidence, "
                       "probabilities, needs_review, out_of_distribution, ood_score, ood_reason, error, created_at, "
                       "flags")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Version 3 knows which file content each result belongs to, and lets a model try again.

    * ``images.mtime_ns`` beside ``size``: when either differs from the file on disk, the file is
      hashed again (``NULL`` in old rows: the next run hashes once and fills it in).
    * ``predictions.image_sha256``: the content the prediction was made from. Old rows get their
      image's stored sha256, the content that was hashed when it was classified.
    * ``UNIQUE(image_pk, model_sha256)`` is gone (SQLite cannot drop a constraint, so the table is
      rebuilt, keeping every row and its ``pk``): an error result is retried, and a replaced file is
      classified again, each as a new row; the history stays.
    * ``reviews.image_sha256``: the content the reviewer looked at (old rows: the image's sha256),
      so a review never carries over to a file that replaced the one reviewed.
    * :data:`APPLICATION_ID`, so the file is recognised before anything is written to it.
    """
    conn.execute("ALTER TABLE images ADD COLUMN mtime_ns INTEGER")
    conn.execute(_PREDICTIONS_V3)
    conn.execute(f"INSERT INTO predictions_v3 ({_PREDICTION_COLUMNS}, image_sha256) "
                 f"SELECT {', '.join('p.' + c.strip() for c in _PREDICTION_COLUMNS.split(','))}, i.sha256 "
                 "FROM predictions p JOIN images i ON i.pk = p.image_pk ORDER BY p.pk")
    conn.execute("DROP TABLE predictions")
    conn.execute("ALTER TABLE predictions_v3 RENAME TO predictions")
    conn.execute("CREATE INDEX predictions_by_image ON predictions(image_pk, model_sha256)")
    conn.execute("ALTER TABLE reviews ADD COLUMN image_sha256 TEXT")
    conn.execute("UPDATE reviews SET image_sha256 = (SELECT sha256 FROM images WHERE images.pk = reviews.image_pk)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Version 4 makes the audit log tamper-evident and keeps what a reviewer declared.

    * ``audit_log.prev_hash``, ``audit_log.entry_hash``: the hash chain (:mod:`engine.store.audit`).
      The rows already there are chained now, in pk order: the chain proves nothing about edits
      made to them before this migration.
    * ``audit_head``: the count and the last entry's pk and hash, kept by a trigger, so that a
      deletion at the end of the chain shows too.
    * Triggers refusing ``UPDATE`` and ``DELETE`` on ``audit_log`` (and a head that does not follow it).
    * ``samples.sign_off_statement``: the sentence the reviewer signed (``NULL`` for samples signed
      off before: their statement was never recorded).
    """
    conn.execute("ALTER TABLE audit_log ADD COLUMN prev_hash TEXT")
    conn.execute("ALTER TABLE audit_log ADD COLUMN entry_hash TEXT")
    conn.execute("ALTER TABLE samples ADD COLUMN sign_off_statement TEXT")
    n = chain_existing(conn)
    log.info("chained %d existing audit entries", n)


def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """Version 5 adds named accounts and the lab's policy (:mod:`engine.store.accounts`).

    * ``accounts``: one row per person (user names unique whatever their case), the role, the
      Argon2id hash of the password (never the password), active or not. Accounts are never
      deleted, only deactivated: the audit log names them.
    * ``lab_policy``: ``accounts_required``, ``independent_reviewer_required`` ("1"/"0"). No rows
      means the defaults: no accounts required, as before this version.
    """
    conn.execute("""
        CREATE TABLE accounts (
            pk INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            display_name TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL CHECK (role IN ('technician', 'reviewer', 'administrator')),
            password_hash TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created_at TEXT NOT NULL,
            changed_at TEXT NOT NULL)""")
    conn.execute("CREATE TRIGGER accounts_never_deleted BEFORE DELETE ON accounts "
                 "BEGIN SELECT RAISE(ABORT, 'accounts are deactivated, never deleted'); END")
    conn.execute("CREATE TABLE lab_policy (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # The accounts and the policy are re-derived from their audit entries (engine/store/accounts.py).
    conn.execute("CREATE INDEX audit_by_action ON audit_log(action)")


#: The table of version 6 (the same on PostgreSQL: revision 0006, engine/store/migrations).
SAMPLE_LEASES_TABLE = """
CREATE TABLE sample_leases (
    sample_pk   INTEGER PRIMARY KEY REFERENCES samples(pk),
    holder      TEXT NOT NULL,
    workstation TEXT NOT NULL,
    token       TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL)"""


def _migrate_5_to_6(conn: sqlite3.Connection) -> None:
    """Version 6 adds ``sample_leases``: which workstation is classifying a sample now, until
    when (:mod:`engine.store.leases`). A lease is working state, not history: it is not audited."""
    conn.execute(SAMPLE_LEASES_TABLE)


#: The tables of version 7 (PostgreSQL: revision 0007, :data:`engine.store.pg_schema.LAB_MODEL_TABLES`).
LAB_MODEL_TABLES: tuple[str, ...] = (
    """CREATE TABLE lab_models (
    pk           INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256       TEXT NOT NULL UNIQUE,
    model_id     TEXT NOT NULL,
    version      TEXT NOT NULL,
    card_json    TEXT NOT NULL,
    published_at TEXT NOT NULL,
    published_by TEXT NOT NULL)""",
    """CREATE TABLE lab_model_files (
    model_pk INTEGER NOT NULL REFERENCES lab_models(pk),
    name     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    content  BLOB NOT NULL,
    PRIMARY KEY (model_pk, name))""",
    """CREATE TABLE lab_active_model (
    pk              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_pk        INTEGER NOT NULL REFERENCES lab_models(pk),
    activated_at    TEXT NOT NULL,
    activated_by    TEXT NOT NULL,
    reason          TEXT NOT NULL,
    previous_sha256 TEXT NOT NULL DEFAULT '')""",
)

#: What each refusing trigger of version 7 says (no quotes: they are SQL literals): a published model
#: and the activation history never change; the hashes are what shows a change made anyway.
LAB_MODEL_RULES: dict[str, str] = {
    "lab_models": "a published lab model cannot be changed or deleted",
    "lab_model_files": "the files of a published lab model cannot be changed or deleted",
    "lab_active_model": "the history of the lab model is append-only: a rollback is a new activation",
}


def _migrate_6_to_7(conn: sqlite3.Connection) -> None:
    """Version 7 shares models through the database (:mod:`engine.store.lab_models`).

    * ``lab_models``: one row per published model, by its weights' sha256 (unique), with its card.
    * ``lab_model_files``: the model's files (weights, card, ONNX graphs), each with its sha256
      and size, so that every workstation checks what it fetched before installing it.
    * ``lab_active_model``: every activation for the lab, oldest first; the last row is the lab's
      active model (a rollback is one more row).
    * Triggers refusing ``UPDATE`` and ``DELETE`` on the three (the history is append-only).
    """
    for statement in LAB_MODEL_TABLES:
        conn.execute(statement)
    for table, rule in LAB_MODEL_RULES.items():
        for event in ("UPDATE", "DELETE"):
            conn.execute(f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                         f"BEGIN SELECT RAISE(ABORT, '{rule}'); END")


#: ``MIGRATIONS[v]`` upgrades a version-``v`` database to ``v + 1``, inside a transaction. A
#: schema change adds one step here and one Alembic revision (engine/store/migrations/versions)
#: for PostgreSQL, and bumps SCHEMA_VERSION; tests/engine/store/test_engines.py keeps them equal.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _migrate_0_to_1, 1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4, 4: _migrate_4_to_5,
    5: _migrate_5_to_6, 6: _migrate_6_to_7}


def _list_names(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return f"the tables {shown}{', ...' if len(names) > 5 else ''}"


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


_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100
_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def recognise(path: Path) -> None:
    """Refuse, without writing a byte, a file that is not an ALLSight result database.

    Accepted: no file yet, an empty file, an empty SQLite database (all three become a new
    result database), a file whose header carries :data:`APPLICATION_ID`, and a database of
    schema 1 or 2 (written before the application id existed: it has :data:`TABLES` and a
    ``user_version`` of 1 or more; a newer version is refused later by :func:`migrate`, by name).
    Anything else raises :class:`StoreError` naming the file: a folder, a pipe or a device, a
    file that is not SQLite (a JPEG given as the database), and another application's SQLite
    database. This runs before the file is opened for writing, so a refused file keeps its bytes,
    its journal mode and its neighbours (no ``-wal``/``-shm`` files are made for it).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"{path}: cannot open the result database: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path}: is a folder, not a result database file")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: not a regular file (a pipe or a device?), so not a result database; "
                         "it was left unchanged")
    if st.st_size == 0:
        return  # SQLite's empty database: created as a new one
    try:
        fd = os.open(path, _O_READ)  # O_NONBLOCK: a file swapped for a pipe meanwhile cannot block
        try:
            header = os.read(fd, _HEADER_BYTES)
        finally:
            os.close(fd)
    except OSError as err:
        raise StoreError(f"{path}: cannot read the result database: {err.strerror or err}") from None
    if len(header) < _HEADER_BYTES or not header.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path}: not an ALLSight result database (not an SQLite database file); "
                         "it was left unchanged. Choose another file for the result database.")
    # The header's application id (offset 68) is enough when it is set; a database in WAL mode
    # may hold a newer one in its -wal file, which the probe below reads.
    if int.from_bytes(header[68:72], "big", signed=True) == APPLICATION_ID:
        return
    application_id, version, names = _probe(path)
    if application_id == APPLICATION_ID:
        return
    if application_id == 0 and version == 0 and not names:
        return  # an empty SQLite database
    if application_id == 0 and version >= 1 and TABLES.issubset(names):
        return  # ALLSight schema 1 or 2 (or newer: migrate() refuses it by its version)
    if application_id:
        what = f"application id {application_id:#x}"
    elif names:
        what = _list_names(sorted(names))
    else:
        what = f"schema version {version} but none of ALLSight's tables"
    raise StoreError(f"{path}: not an ALLSight result database: it is another SQLite database ({what}); "
                     "it was left unchanged. Choose another file for the result database.")


def _probe(path: Path) -> tuple[int, int, list[str]]:
    """``(application_id, user_version, table and index names)`` of an SQLite file, read only.

    Without a ``-wal`` file beside it the main file is the whole database: it is opened
    ``immutable`` (no locks, no ``-shm``/``-wal`` files made). With one (the database is open in
    another process, or one crashed) it is opened read-only so the journal's commits are seen.
    """
    wal = path.with_name(path.name + "-wal")
    query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?{query}", uri=True, isolation_level=None)
    except sqlite3.Error as err:
        raise StoreError(f"{path}: cannot open the result database: {err}") from None
    try:
        application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")]
    except sqlite3.Error as err:
        raise StoreError(f"{path}: not a usable result database ({err}); it was left unchanged") from None
    finally:
        conn.close()
    return application_id, version, names
