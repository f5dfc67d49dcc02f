"""Persistent history of classified samples: an embedded SQLite database (stdlib ``sqlite3``).

A *sample* is one patient's folder of blood-smear images. The store keeps, per sample, the
images (with a sha256 of their content, and the size and mtime that tell when to hash again),
every model prediction (with the sha256 of the content it was made from: one ``ok`` result per
image, model file and content, after any number of errors),
the reviewers' decisions (append-only, kept *beside* the model output, never over it), the
sign-off, and an audit log in which every mutating call writes one row in the same transaction.

Guarantees
----------
* Every write is its own short ``BEGIN IMMEDIATE ... COMMIT`` transaction, committed before the
  call returns: a prediction recorded with :meth:`ResultStore.record_prediction` survives the
  process being killed the moment after. The database runs in WAL mode with
  ``synchronous=NORMAL`` (a committed transaction survives a crash of the application; a power
  loss may lose the last few commits but never corrupts the file).
* Re-running is cheap and safe: :meth:`~ResultStore.add_images` and
  :meth:`~ResultStore.record_prediction` are idempotent, and :meth:`~ResultStore.pending_paths`
  lists what a model has still to do (resume): an image it has no ``ok`` result for *from the
  file's current content*. So an error result is retried on the next run, and a file replaced
  after it was classified (``add_images`` notices: size or mtime changed, then the sha256) is
  classified again; the old results stay in the history.
* Only regular files are read, never more than :data:`MAX_HASHED_FILE_BYTES`: a pipe, a device
  or a link to one is recorded without a hash and never blocks (:func:`hash_file`).
* A file that is not an ALLSight result database (another application's SQLite file, a JPEG) is
  refused with a :class:`StoreError` before anything is written to it
  (:func:`engine.store.schema.recognise`).
* A signed-off sample is frozen: nothing about it changes until :meth:`~ResultStore.reopen`; its
  images whose file changed on disk since are reported by :meth:`~ResultStore.changed_images`.

Threading model
---------------
One :class:`ResultStore` holds **one** connection opened with ``check_same_thread=False`` and
serialises every call on it with a re-entrant lock. Any thread may call any method: the GUI may
write from worker threads and read from the GUI thread through the same object. Calls are short
(file hashing happens outside the lock), so a reader waits at most for one small transaction.
Several processes (the GUI and a ``classify --db`` run) may open the same file at once: SQLite's
own locking plus a busy timeout handles that.

The file format carries a schema version (``PRAGMA user_version``). Opening an older file runs
the migrations in :data:`MIGRATIONS`; a file written by a newer ALLSight is refused with a
:class:`StoreError` rather than guessed at.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from engine import CLASS_IDS
from engine.core.flags import (
    codes_from_legacy,
    format_codes,
    normalize,
    parse_codes,
)
from engine.core.paths import user_dir
from engine.core.records import EXCLUDED_CLASS, ImageResult, ReviewedImage, sign_off_blockers
from engine.io.images import MAX_FILE_BYTES
from engine.store.audit import OPEN_TAIL, AuditCheck, append, check_chain
from engine.store.errors import SignOffError, StoreError
from engine.store.naming import image_key
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate, recognise

log = logging.getLogger(__name__)

DB_FILE_NAME = "allsight.sqlite3"


REVIEW_CLASSES: tuple[str, ...] = (*CLASS_IDS, EXCLUDED_CLASS)

BUSY_TIMEOUT_S = 30.0

#: The largest image file the store hashes: the image loader's own file-size limit
#: (:data:`engine.io.images.MAX_FILE_BYTES`, ``$ALLSIGHT_MAX_IMAGE_MB``), so that a file is hashed
#: exactly when it is small enough to be classified. A larger one is recorded with no hash, like an
#: unreadable one (its classification fails for its size anyway), and is not read at all.
MAX_HASHED_FILE_BYTES: int = MAX_FILE_BYTES

_CHUNK = 1 << 20
# O_NONBLOCK: opening a FIFO that replaced the file between stat and open must not wait for a
# writer. It changes nothing for a regular file. (Windows has neither FIFOs nor the flag.)
_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


class _Content(Enum):
    STORED = "the image's stored sha256"


#: ``record_prediction(..., image_sha256=STORED_CONTENT)``: the result was made from the content
#: the store has hashed for the image (the default).
STORED_CONTENT: Literal[_Content.STORED] = _Content.STORED


# ------------------------------------------------------------------------------------ helpers
#: The class a withdrawn review is stored with (the reviews table keeps every row; the latest
#: one decides, and this one means "not reviewed").
WITHDRAWN_REVIEW = ""

def default_db_path() -> Path:
    """``<user data dir>/allsight.sqlite3``; the folder is ``$ALLSIGHT_DATA_DIR`` when set, else
    the platform's per-user data folder (``engine.core.paths.user_dir("data")``). Nothing is created here."""
    return user_dir("data") / DB_FILE_NAME


@dataclass(frozen=True)
class _FileState:
    """What the store keeps of a file: its sha256 and the identity (size, mtime in ns) that tells
    when to hash it again. All ``None`` for a file that is missing or not a regular file; only
    ``sha256`` is ``None`` for a regular file that cannot be read or is too large."""

    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None


def _stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    try:
        return os.stat(path)  # follows links: a link to an image is that image
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None


def _identity(path: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """``(size, mtime_ns)`` of a regular file, ``(None, None)`` for anything else: compared
    with the stored values to decide whether the file must be hashed again."""
    st = _stat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None, None
    return st.st_size, st.st_mtime_ns


def _file_state(path: str | os.PathLike[str], max_bytes: int = MAX_HASHED_FILE_BYTES) -> _FileState:
    """The file's sha256 and identity. Only a regular file is opened (checked before opening, and
    again on the open descriptor), and only one of at most ``max_bytes``: a FIFO, a device (or a
    link to ``/dev/zero``) or a folder is never read, so this never blocks nor reads without end."""
    st = _stat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return _FileState()
    if st.st_size > max_bytes:
        return _FileState(None, st.st_size, st.st_mtime_ns)
    try:
        fd = os.open(path, _O_READ)
    except OSError:
        return _FileState(None, st.st_size, st.st_mtime_ns)
    with open(fd, "rb", buffering=0) as f:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # swapped for something else between stat and open
            return _FileState()
        identity = (fst.st_size, fst.st_mtime_ns)
        if fst.st_size > max_bytes:
            return _FileState(None, *identity)
        digest, total = hashlib.sha256(), 0
        try:
            while chunk := f.read(min(_CHUNK, max_bytes + 1 - total)):
                total += len(chunk)
                if total > max_bytes:  # grew while being read
                    return _FileState(None, *identity)
                digest.update(chunk)
        except OSError:
            return _FileState(None, *identity)
    # The identity is the one from before reading: a file changed while it was read has another
    # size or mtime by now, so the next run hashes it again.
    return _FileState(digest.hexdigest(), *identity)


def hash_file(path: str | os.PathLike[str], max_bytes: int = MAX_HASHED_FILE_BYTES) -> str | None:
    """sha256 (hex) of a file's content, read in 1 MiB chunks; ``None`` if it cannot be read, is
    not a regular file (a FIFO, a device, a folder: never opened) or is larger than ``max_bytes``."""
    return _file_state(path, max_bytes).sha256


def _folder_key(folder: str | os.PathLike[str]) -> str:
    """A sample's folder as stored: normalised, or "" for files from several folders."""
    return image_key(folder) if os.fspath(folder) else ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


#: The longest sign-off statement accepted.
MAX_STATEMENT_CHARS = 2000


def _details(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"unreadable_details": text}
    return value if isinstance(value, dict) else {"value": value}


def _aware(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.astimezone()  # naive: this computer's local time


def _required(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise StoreError(f"{what} must not be empty")
    return text


# ------------------------------------------------------------------------------------ records
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
    regular file, or over :data:`MAX_HASHED_FILE_BYTES`); ``size``/``mtime_ns`` (nanoseconds) are
    ``None`` when it was missing or not a regular file. They describe the content the sample's
    current results belong to."""

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


# ------------------------------------------------------------------------------------ store
_SAMPLE_COLUMNS = ("s.sample_id, s.folder, s.patient_id, s.operator, s.created_at, s.updated_at, "
                   "s.signed_off_by, s.signed_off_at, "
                   "(SELECT COUNT(*) FROM images WHERE sample_pk = s.pk), s.sign_off_statement")


class ResultStore:
    """The result history database. Open with :meth:`open` (or the constructor), use as a
    context manager or call :meth:`close`. Safe to share between threads (see module docs)."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"{self.path}: cannot create the folder for the result database: {err}") from err
        # Before the file is opened for writing: another application's database (or a JPEG given
        # as --db) is refused with its bytes unchanged.
        recognise(self.path)
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot open the result database: {err}") from err
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            # Migrate (which checks the version, and that a "new" file is still empty) before
            # switching to WAL: a refused file keeps its journal mode.
            migrate(conn)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: WAL journal mode unavailable (got %r); using it anyway", self.path, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
        except StoreError as err:
            conn.close()
            if str(self.path) in str(err):
                raise
            raise StoreError(f"{self.path}: {err}") from err
        except sqlite3.Error as err:
            conn.close()
            raise StoreError(f"{self.path}: not a usable ALLSight result database: {err}") from err
        self._conn: sqlite3.Connection | None = conn
        #: What was wrong with the audit chain when the store was opened (its last
        #: :data:`~engine.store.audit.OPEN_TAIL` entries, the count and the head were checked),
        #: or ``None``. The store opens anyway: a lab must still reach its data.
        #: :meth:`verify_audit` checks the whole chain.
        self.audit_problem: AuditCheck | None = None
        check = self._check_audit(OPEN_TAIL)
        if not check.ok:
            self.audit_problem = check
            log.warning("%s: %s", self.path, check.describe())

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> ResultStore:
        """Open (creating or migrating as needed) the database at ``path`` (default:
        :func:`default_db_path`)."""
        return cls(path)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Later calls raise :class:`StoreError`."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> ResultStore:  # noqa: PYI034 (Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # -------------------------------------------------------------------------------- plumbing
    @property
    def journal_mode(self) -> str:
        with self._read() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the result database is closed")
            try:
                yield self._conn
            except sqlite3.Error as err:
                raise StoreError(f"{self.path}: database error: {err}") from err

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short transaction, committed on exit (rolled back on any exception)."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the result database is closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise StoreError(f"{self.path}: cannot write to the result database: {err}") from err
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: database error: {exc}") from exc
                raise

    @staticmethod
    def _audit(conn: sqlite3.Connection, actor: str, action: str, sample_pk: int | None,
               image_pk: int | None = None, **details: Any) -> None:
        """Append one chained audit entry, in the caller's transaction."""
        append(conn, _now(), actor or "", action, sample_pk, image_pk,
               json.dumps(details, sort_keys=True, default=str))

    def _sample_row(self, conn: sqlite3.Connection, sample_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM samples WHERE sample_id = ?", (sample_id,)).fetchone()
        if row is None:
            raise StoreError(f"no sample {sample_id!r} in {self.path}")
        return row

    @staticmethod
    def _refuse_if_signed(row: sqlite3.Row, what: str) -> None:
        if row["signed_off_at"] is not None:
            raise SignOffError(
                f"sample {row['sample_id']!r} was signed off by {row['signed_off_by']} at "
                f"{row['signed_off_at']}; reopen it before {what}")

    @staticmethod
    def _image_pk(conn: sqlite3.Connection, sample_pk: int, path: str) -> int | None:
        row = conn.execute("SELECT pk FROM images WHERE sample_pk = ? AND path = ?", (sample_pk, path)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _touch(conn: sqlite3.Connection, sample_pk: int) -> None:
        conn.execute("UPDATE samples SET updated_at = ? WHERE pk = ?", (_now(), sample_pk))

    @staticmethod
    def _insert_image(conn: sqlite3.Connection, sample_pk: int, path: str, state: _FileState) -> int | None:
        """Insert if absent; returns the new pk, or None when the path was already there."""
        position = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM images WHERE sample_pk = ?",
                                (sample_pk,)).fetchone()[0]
        cur = conn.execute(
            "INSERT OR IGNORE INTO images (sample_pk, path, file_name, sha256, size, mtime_ns, position, added_at) "
            "VALUES (?,?,?,?,?,?,?,?)", (sample_pk, path, os.path.basename(path), state.sha256, state.size,
                                         state.mtime_ns, position, _now()))
        return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid is not None else None

    # -------------------------------------------------------------------------------- samples
    @staticmethod
    def _to_sample(row: sqlite3.Row | tuple) -> Sample:
        return Sample(*row)

    def create_or_get_sample(self, sample_id: str, folder: str | os.PathLike[str], patient_id: str = "",
                             operator: str = "") -> Sample:
        """The sample ``sample_id``, created (with an audit row) if new. An existing sample is
        returned unchanged (``folder``/``patient_id``/``operator`` are then ignored)."""
        sample_id = _required(sample_id, "sample id")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM samples WHERE sample_id = ?", (sample_id,)).fetchone() is None:
                self._insert_sample(conn, sample_id, _folder_key(folder), patient_id, operator)
            return self._sample_by_id(conn, sample_id)

    def _insert_sample(self, conn: sqlite3.Connection, sample_id: str, folder: str, patient_id: str,
                       operator: str) -> None:
        now = _now()
        cur = conn.execute(
            "INSERT INTO samples (sample_id, folder, patient_id, operator, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?)", (sample_id, folder, patient_id or "", operator or "", now, now))
        self._audit(conn, operator, "create_sample", cur.lastrowid, folder=folder,
                    patient_id=patient_id or "", operator=operator or "")

    def _sample_by_id(self, conn: sqlite3.Connection, sample_id: str) -> Sample:
        row = conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples s WHERE s.sample_id = ?", (sample_id,)).fetchone()
        return self._to_sample(row)

    def register_sample(self, name: str, folder: str | os.PathLike[str], *, patient_id: str = "",
                        operator: str = "", taken: Iterable[str] = ()) -> tuple[Sample, bool]:
        """The stored sample of the images of ``folder``, named after ``name``: ``(sample, created)``.

        The one sample-naming rule of both front ends (the CLI's ``classify --db`` and the app):
        the ID is ``name``, or ``name (2)``, ``name (3)``... when that ID belongs to another folder
        or is in ``taken`` (IDs already used in this run or session). So the same folder always
        comes back as the same sample, however it was classified, and two folders of the same name
        never merge into one sample. ``folder`` "" (files from several folders) matches a stored
        sample without a folder.
        """
        name = _required(name, "sample id")
        folder_s = _folder_key(folder)
        skip = set(taken)
        for n in itertools.count(1):
            candidate = name if n == 1 else f"{name} ({n})"
            if candidate in skip:
                continue
            with self._write() as conn:  # look up and create in one transaction
                row = conn.execute("SELECT folder FROM samples WHERE sample_id = ?", (candidate,)).fetchone()
                if row is not None and row["folder"] != folder_s:
                    continue  # another folder's sample
                if row is None:
                    self._insert_sample(conn, candidate, folder_s, patient_id, operator)
                return self._sample_by_id(conn, candidate), row is None
        raise AssertionError("unreachable")  # itertools.count never ends

    def get_sample(self, sample_id: str) -> Sample | None:
        """The sample, or ``None`` when there is none with that id."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples s WHERE s.sample_id = ?",
                               (sample_id,)).fetchone()
        return None if row is None else self._to_sample(row)

    def list_samples(self) -> list[Sample]:
        """Every sample, newest first (by creation time)."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples s "
                                "ORDER BY s.created_at DESC, s.pk DESC").fetchall()
        return [self._to_sample(r) for r in rows]

    def update_sample(self, sample_id: str, *, new_sample_id: str | None = None, patient_id: str | None = None,
                      operator: str | None = None, actor: str) -> Sample:
        """Rename a sample and/or change its patient id or operator (``None`` = keep). The audit
        row records the old and new values. Refused for a signed-off sample or a taken id."""
        actor = _required(actor, "actor")
        with self._write() as conn:
            row = self._sample_row(conn, sample_id)
            self._refuse_if_signed(row, "editing it")
            changes: dict[str, list[str]] = {}
            new_values = {"sample_id": None if new_sample_id is None else _required(new_sample_id, "new sample id"),
                          "patient_id": patient_id, "operator": operator}
            for column, value in new_values.items():
                if value is not None and value != row[column]:
                    changes[column] = [row[column], value]
            if changes:
                if "sample_id" in changes and conn.execute(
                        "SELECT 1 FROM samples WHERE sample_id = ?", (new_values["sample_id"],)).fetchone():
                    raise StoreError(f"cannot rename sample {sample_id!r}: "
                                     f"a sample {new_values['sample_id']!r} already exists")
                sets = ", ".join(f"{c} = ?" for c in changes)
                conn.execute(f"UPDATE samples SET {sets}, updated_at = ? WHERE pk = ?",
                             (*(v[1] for v in changes.values()), _now(), row["pk"]))
                self._audit(conn, actor, "update_sample", row["pk"], changes=changes)
            current = new_values["sample_id"] if "sample_id" in changes else sample_id
            out = conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples s WHERE s.sample_id = ?",
                               (current,)).fetchone()
        return self._to_sample(out)

    # -------------------------------------------------------------------------------- images
    def add_images(self, sample_id: str, paths: Iterable[str | os.PathLike[str]], actor: str = "") -> int:
        """Add image files to a sample, in the given order after those already there, and notice
        the ones already there that changed on disk. Returns how many images were added.

        Idempotent: paths already in the sample (or repeated) keep their place. Each new file's
        sha256, size and mtime are read first, outside the database lock (no hash for a file that
        is unreadable, not a regular file or too large: :func:`hash_file`). A file already in the
        sample is hashed again when its size or mtime differ from the stored ones (or it had no
        hash); when its content changed, the image takes the new sha256 (audited as
        ``image_changed``), so :meth:`pending_paths` lists it again and :meth:`predictions` no
        longer returns the results of the old content (they stay in the history). Same content,
        new mtime: only the stored identity is refreshed (not audited: it changes no result).

        A signed-off sample is never changed: new images are refused (:class:`SignOffError`), and
        changed files are left as they are (:meth:`changed_images` reports them).
        """
        wanted = list(dict.fromkeys(image_key(p) for p in paths))
        with self._read() as conn:
            row = self._sample_row(conn, sample_id)
            known = {r["path"]: r for r in conn.execute(
                "SELECT pk, path, sha256, size, mtime_ns FROM images WHERE sample_pk = ?", (row["pk"],))}
        new = [p for p in wanted if p not in known]
        if row["signed_off_at"] is not None:
            if new:
                self._refuse_if_signed(row, "adding images")
            return 0
        # Outside the lock: a stat per known file, a hash per new or changed one.
        recheck = []
        for p in wanted:
            old = known.get(p)
            if old is None:
                continue
            stored = (old["sha256"], old["size"], old["mtime_ns"])
            if stored[0] is None or _identity(p) != stored[1:]:
                state = _file_state(p)
                if (state.sha256, state.size, state.mtime_ns) != stored:
                    recheck.append((old, state))
        states = [(p, _file_state(p)) for p in new]
        if not states and not recheck:
            return 0
        added = 0
        with self._write() as conn:
            row = self._sample_row(conn, sample_id)
            if states:
                self._refuse_if_signed(row, "adding images")
            elif row["signed_off_at"] is not None:
                return 0  # signed off meanwhile: its images are left as they are
            actor = actor or row["operator"]
            for path, state in states:
                if self._insert_image(conn, row["pk"], path, state) is not None:
                    added += 1
            changed = 0
            for old, state in recheck:
                # Only if nobody updated it meanwhile (another run may have noticed first).
                cur = conn.execute(
                    "UPDATE images SET sha256 = ?, size = ?, mtime_ns = ? "
                    "WHERE pk = ? AND sha256 IS ? AND size IS ? AND mtime_ns IS ?",
                    (state.sha256, state.size, state.mtime_ns, old["pk"], old["sha256"], old["size"],
                     old["mtime_ns"]))
                if cur.rowcount == 1 and state.sha256 != old["sha256"]:
                    changed += 1
                    self._audit(conn, actor, "image_changed", row["pk"], old["pk"], old_sha256=old["sha256"],
                                sha256=state.sha256, old_size=old["size"], size=state.size)
            if added or changed:
                self._touch(conn, row["pk"])
            if added:
                self._audit(conn, actor, "add_images", row["pk"], count=added)
        return added

    def images(self, sample_id: str) -> list[ImageRecord]:
        """The sample's images in their stored order."""
        with self._read() as conn:
            row = self._sample_row(conn, sample_id)
            rows = conn.execute("SELECT path, file_name, sha256, size, position, added_at, mtime_ns FROM images "
                                "WHERE sample_pk = ? ORDER BY position, pk", (row["pk"],)).fetchall()
        return [ImageRecord(row["sample_id"], *r) for r in rows]

    def changed_images(self, sample_id: str) -> list[str]:
        """The sample's image paths (in order) whose file no longer has the content its results
        belong to: replaced, edited, deleted or become unreadable since it was hashed (or readable,
        when it was not). Writes nothing. For a signed-off sample, which :meth:`add_images`
        never changes, this is how a front end can warn that the signed-off results describe files
        that are no longer there as they were. A file whose size and mtime are unchanged is taken
        as unchanged (not hashed again)."""
        with self._read() as conn:
            row = self._sample_row(conn, sample_id)
            rows = conn.execute("SELECT path, sha256, size, mtime_ns FROM images WHERE sample_pk = ? "
                                "ORDER BY position, pk", (row["pk"],)).fetchall()
        out = []
        for r in rows:  # outside the lock: stats and hashes
            if r["sha256"] is not None and _identity(r["path"]) == (r["size"], r["mtime_ns"]):
                continue
            if _file_state(r["path"]).sha256 != r["sha256"]:
                out.append(r["path"])
        return out

    # -------------------------------------------------------------------------------- predictions
    def record_prediction(self, sample_id: str, path: str | os.PathLike[str], result: ImageResult, model_id: str,
                          model_version: str, model_sha256: str, actor: str = "", *,
                          image_sha256: str | None | Literal[_Content.STORED] = STORED_CONTENT) -> bool:
        """Store one model result for one image, committed before returning.

        ``result`` is any object with the attributes of :class:`engine.core.records.ImageResult`
        (``status``, ``predicted_class``, ``confidence``, ``probabilities``, ``needs_review``,
        ``out_of_distribution``, ``ood_score``, ``error``, ``flags``). A result without ``flags``
        (an older caller) gets codes derived from its ``ood_reason`` text and flags, as stored
        results of schema 1 are migrated. An image not yet in the sample is added first (at the
        end, hashed).

        ``image_sha256`` is the content the result was made from: by default the image's stored
        sha256; the classification service passes the one it planned with, so that a result
        cannot be filed under a file that replaced the one classified meanwhile.

        Idempotent per model file and content: returns False, changing nothing, when an ``ok``
        prediction of ``model_sha256`` for this content of the image exists. Otherwise (no
        prediction yet, or only errors: a retry) the result is added as a new row; earlier rows
        stay in the history.
        """
        model_sha256 = _required(model_sha256, "model sha256")
        key = image_key(path)
        status = getattr(result, "status", None)
        if status not in ("ok", "error"):
            raise StoreError(f"{key}: result status must be 'ok' or 'error', not {status!r}")
        predicted = getattr(result, "predicted_class", None)
        if status == "ok" and predicted not in CLASS_IDS:
            raise StoreError(f"{key}: unknown predicted class {predicted!r}; expected one of {', '.join(CLASS_IDS)}")
        probs = getattr(result, "probabilities", None)
        probs_json = None if probs is None else json.dumps({str(k): float(v) for k, v in dict(probs).items()})
        needs_review = bool(getattr(result, "needs_review", False))
        ood = bool(getattr(result, "out_of_distribution", False))
        flags = getattr(result, "flags", None)
        try:
            if flags is None:
                codes = codes_from_legacy(getattr(result, "ood_reason", "") or "", needs_review=needs_review,
                                          out_of_distribution=ood) if status == "ok" else ()
            else:
                codes = normalize(flags)
        except ValueError as err:
            raise StoreError(f"{key}: {err}") from None
        values = (model_id or "", model_version or "", model_sha256, status, predicted,
                  _opt_float(getattr(result, "confidence", None)), probs_json, int(needs_review), int(ood),
                  _opt_float(getattr(result, "ood_score", None)), format_codes(codes),
                  getattr(result, "error", None))

        with self._read() as conn:
            row = self._sample_row(conn, sample_id)
            image_pk = self._image_pk(conn, row["pk"], key)
        state = _file_state(key) if image_pk is None else None  # hashed outside the lock

        with self._write() as conn:
            row = self._sample_row(conn, sample_id)
            image = conn.execute("SELECT pk, sha256 FROM images WHERE sample_pk = ? AND path = ?",
                                 (row["pk"], key)).fetchone()
            if image is not None:
                content = image["sha256"] if image_sha256 is STORED_CONTENT else image_sha256
                if conn.execute(
                        "SELECT 1 FROM predictions WHERE image_pk = ? AND model_sha256 = ? AND image_sha256 IS ? "
                        "AND status = 'ok'", (image["pk"], model_sha256, content)).fetchone():
                    return False
            self._refuse_if_signed(row, "recording new predictions")
            actor = actor or row["operator"]
            if image is None:
                state = state if state is not None else _file_state(key)
                image_pk = self._insert_image(conn, row["pk"], key, state)
                content = state.sha256 if image_sha256 is STORED_CONTENT else image_sha256
                self._audit(conn, actor, "add_images", row["pk"], count=1)
            else:
                image_pk = int(image["pk"])
            conn.execute(
                "INSERT INTO predictions (image_pk, model_id, model_version, model_sha256, status, "
                "predicted_class, confidence, probabilities, needs_review, out_of_distribution, ood_score, "
                "flags, error, created_at, image_sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (image_pk, *values, _now(), content))
            self._touch(conn, row["pk"])
            self._audit(conn, actor, "record_prediction", row["pk"], image_pk, model_id=model_id,
                        model_version=model_version, model_sha256=model_sha256, status=status,
                        predicted_class=predicted, image_sha256=content)
        return True

    def pending_paths(self, sample_id: str, model_sha256: str) -> list[str]:
        """The sample's image paths (in order) that ``model_sha256`` has still to classify: no
        ``ok`` prediction of it for the image's current content. That is an image it never
        classified (what is left after an interrupted run), one whose latest result is an error
        (retried: the file may have been incomplete, or locked, when it was read), and one whose
        file was replaced since (:meth:`add_images` noticed the new content)."""
        with self._read() as conn:
            row = self._sample_row(conn, sample_id)
            rows = conn.execute(
                "SELECT i.path FROM images i WHERE i.sample_pk = ? AND NOT EXISTS "
                "(SELECT 1 FROM predictions p WHERE p.image_pk = i.pk AND p.model_sha256 = ? "
                "AND p.image_sha256 IS i.sha256 AND p.status = 'ok') "
                "ORDER BY i.position, i.pk", (row["pk"], model_sha256)).fetchall()
        return [r[0] for r in rows]

    def predictions(self, sample_id: str, model_sha256: str | None = None) -> list[ReviewedImage]:
        """One record per image that has a prediction for its current content, in image order:
        the latest prediction of ``model_sha256`` (default: each image's most recent prediction,
        whatever the model), joined with the image's current review (the latest one made for the
        same content). Images without one are left out — see :meth:`pending_paths`. Results of
        a file's earlier content (it was replaced) stay in the database but are not returned."""
        model_filter = "" if model_sha256 is None else " AND model_sha256 = :model"
        sql = (
            "SELECT i.path, i.file_name, i.position, i.sha256 AS image_sha256, p.model_id, p.model_version, "
            "p.model_sha256, p.status, p.predicted_class, p.confidence, p.probabilities, p.needs_review, "
            "p.out_of_distribution, p.ood_score, p.flags, p.error, p.created_at AS predicted_at, "
            "r.final_class, r.reviewer, r.created_at AS reviewed_at, r.note "
            "FROM images i "
            "JOIN predictions p ON p.pk = (SELECT MAX(pk) FROM predictions WHERE image_pk = i.pk "
            f"AND image_sha256 IS i.sha256{model_filter}) "
            "LEFT JOIN reviews r ON r.pk = (SELECT MAX(pk) FROM reviews WHERE image_pk = i.pk "
            "AND image_sha256 IS i.sha256) "
            "WHERE i.sample_pk = :sample ORDER BY i.position, i.pk")
        with self._read() as conn:
            row = self._sample_row(conn, sample_id)
            rows = conn.execute(sql, {"sample": row["pk"], "model": model_sha256}).fetchall()
        out = []
        for r in rows:
            reviewed = r["reviewer"] is not None and r["final_class"] != WITHDRAWN_REVIEW
            try:
                flags = parse_codes(r["flags"])
            except ValueError as err:
                raise StoreError(f"{self.path}: {r['path']}: {err} (written by a newer ALLSight?)") from None
            out.append(ReviewedImage(
                sample_id=row["sample_id"], path=r["path"], file_name=r["file_name"], position=r["position"],
                image_sha256=r["image_sha256"], model_id=r["model_id"], model_version=r["model_version"],
                model_sha256=r["model_sha256"], status=r["status"], predicted_class=r["predicted_class"],
                confidence=r["confidence"],
                probabilities=None if r["probabilities"] is None else json.loads(r["probabilities"]),
                needs_review=bool(r["needs_review"]), out_of_distribution=bool(r["out_of_distribution"]),
                ood_score=r["ood_score"], flags=flags, error=r["error"],
                predicted_at=r["predicted_at"],
                final_class=r["final_class"] if reviewed else None,
                reviewed_by=r["reviewer"] if reviewed else None, reviewed_at=r["reviewed_at"] if reviewed else None,
                review_note=(r["note"] or "") if reviewed else ""))
        return out

    # -------------------------------------------------------------------------------- review
    def record_review(self, sample_id: str, path: str | os.PathLike[str], final_class: str | None, reviewer: str,
                      note: str = "") -> None:
        """Append a reviewer's class for one image (one of :data:`engine.CLASS_IDS`, or
        :data:`EXCLUDED_CLASS` to leave the image out of the counts; ``None`` withdraws the
        current review: the image is "not reviewed" again, and the withdrawal is itself a row of
        the history, audited as ``withdraw_review``, stored as an empty class). The model's prediction is
        kept unchanged beside it; the latest review is the current one. The review belongs to the
        image's current content: if the file is replaced, the new content has no review.
        Refused for a signed-off sample (:class:`SignOffError`) until :meth:`reopen`."""
        reviewer = _required(reviewer, "reviewer")
        if final_class is not None and final_class not in REVIEW_CLASSES:
            raise StoreError(f"unknown class {final_class!r}; expected one of {', '.join(REVIEW_CLASSES)}")
        key = image_key(path)
        with self._write() as conn:
            row = self._sample_row(conn, sample_id)
            self._refuse_if_signed(row, "changing reviews")
            image = conn.execute("SELECT pk, sha256 FROM images WHERE sample_pk = ? AND path = ?",
                                 (row["pk"], key)).fetchone()
            if image is None:
                raise StoreError(f"{key}: not an image of sample {sample_id!r}")
            image_pk = int(image["pk"])
            model = conn.execute("SELECT predicted_class FROM predictions WHERE image_pk = ? AND image_sha256 IS ? "
                                 "ORDER BY pk DESC LIMIT 1", (image_pk, image["sha256"])).fetchone()
            model_class = None if model is None else model[0]
            conn.execute("INSERT INTO reviews (image_pk, reviewer, final_class, note, created_at, image_sha256) "
                         "VALUES (?,?,?,?,?,?)",
                         (image_pk, reviewer, final_class or WITHDRAWN_REVIEW, note or "", _now(), image["sha256"]))
            self._touch(conn, row["pk"])
            if final_class is None:
                self._audit(conn, reviewer, "withdraw_review", row["pk"], image_pk, model_class=model_class,
                            note=note or "")
            else:
                self._audit(conn, reviewer, "record_review", row["pk"], image_pk, final_class=final_class,
                            model_class=model_class, overridden=final_class != model_class, note=note or "")

    def sign_off(self, sample_id: str, reviewer: str, statement: str, *,
                 require_independent_reviewer: bool = False) -> Sample:
        """Record that ``reviewer`` signed the sample's result off now, declaring ``statement``.

        ``statement`` is the sentence the reviewer agreed to (build it with
        :func:`engine.core.records.sign_off_statement` so that every front end says the same);
        it is required, kept with the sample (:attr:`Sample.sign_off_statement`) and in the
        ``sign_off`` audit entry. Refused (:class:`SignOffError`) when the statement is empty,
        when the sample has no images, when an image has no prediction yet, when a flagged image
        (needs review, out of distribution or an error, on its latest prediction) has no review,
        or when it is already signed off; with ``require_independent_reviewer``, also when the
        reviewer is the actor of any ``record_prediction`` audit entry of the sample (compared
        ignoring case and surrounding spaces). The audit row keeps the sample-level call at the
        time of signing.
        """
        from engine.core.summary import summarize

        reviewer = _required(reviewer, "reviewer")
        statement = (statement or "").strip()
        if not statement:
            raise SignOffError(f"cannot sign off sample {sample_id!r}: the sign-off statement must not be empty")
        if len(statement) > MAX_STATEMENT_CHARS:
            raise SignOffError(f"cannot sign off sample {sample_id!r}: the sign-off statement is longer than "
                               f"{MAX_STATEMENT_CHARS} characters")
        with self._lock:
            with self._write() as conn:
                row = self._sample_row(conn, sample_id)
                records = self.predictions(sample_id)  # same connection: read inside this transaction
                if row["signed_off_at"] is not None:
                    raise SignOffError(f"sample {sample_id!r} is already signed off by {row['signed_off_by']} "
                                       f"at {row['signed_off_at']}")
                n_images = conn.execute("SELECT COUNT(*) FROM images WHERE sample_pk = ?", (row["pk"],)).fetchone()[0]
                if n_images == 0:
                    raise SignOffError(f"sample {sample_id!r} has no images to sign off")
                blockers = sign_off_blockers(records, n_images)
                if blockers:
                    raise SignOffError(f"cannot sign off sample {sample_id!r}: {blockers.describe()}",
                                       n_unreviewed=blockers.n_unreviewed, n_pending=blockers.n_pending)
                if require_independent_reviewer:
                    classifiers = {str(r[0]) for r in conn.execute(
                        "SELECT DISTINCT actor FROM audit_log WHERE sample_pk = ? AND action = 'record_prediction'",
                        (row["pk"],))}
                    if reviewer.casefold() in {a.strip().casefold() for a in classifiers}:
                        raise SignOffError(
                            f"cannot sign off sample {sample_id!r}: {reviewer} classified images of this sample, "
                            "and this lab requires a reviewer other than the person who classified")
                summary = summarize(records)
                now = _now()
                conn.execute("UPDATE samples SET signed_off_by = ?, signed_off_at = ?, sign_off_statement = ?, "
                             "updated_at = ? WHERE pk = ?", (reviewer, now, statement, now, row["pk"]))
                self._audit(conn, reviewer, "sign_off", row["pk"], call=summary.call, call_code=summary.call_code,
                            n_images=summary.n_images, n_reviewed=summary.n_reviewed,
                            models=sorted({r.model_sha256 for r in records}), statement=statement,
                            independent_reviewer_required=require_independent_reviewer)
            return self.get_sample(sample_id)  # type: ignore[return-value]

    def reopen(self, sample_id: str, actor: str, reason: str) -> Sample:
        """Undo a sign-off so the sample can be reviewed again; ``reason`` is required and kept in
        the audit log together with who had signed it off and when."""
        actor = _required(actor, "actor")
        reason = _required(reason, "reason for reopening")
        with self._write() as conn:
            row = self._sample_row(conn, sample_id)
            if row["signed_off_at"] is None:
                raise StoreError(f"sample {sample_id!r} is not signed off; nothing to reopen")
            conn.execute("UPDATE samples SET signed_off_by = NULL, signed_off_at = NULL, sign_off_statement = NULL, "
                         "updated_at = ? WHERE pk = ?", (_now(), row["pk"]))
            self._audit(conn, actor, "reopen", row["pk"], reason=reason, was_signed_off_by=row["signed_off_by"],
                        was_signed_off_at=row["signed_off_at"])
            out = conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples s WHERE s.pk = ?", (row["pk"],)).fetchone()
        return self._to_sample(out)

    # -------------------------------------------------------------------------------- audit
    def audit(self, sample_id: str | None = None, *, actor: str | None = None, action: str | None = None,
              since: datetime | None = None, until: datetime | None = None) -> list[AuditEntry]:
        """The audit log, oldest first: every row, or those matching every filter given: about
        the sample ``sample_id`` (its current id; :class:`StoreError` if there is none), by
        ``actor``, of ``action``, written at or after ``since`` and before ``until`` (aware
        datetimes; a naive one is taken as local time)."""
        sql = ("SELECT a.pk, a.ts, a.actor, a.action, s.sample_id, i.path, a.details, a.prev_hash, a.entry_hash "
               "FROM audit_log a LEFT JOIN samples s ON s.pk = a.sample_pk LEFT JOIN images i ON i.pk = a.image_pk")
        where: list[str] = []
        params: list[Any] = []
        if actor is not None:
            where.append("a.actor = ?")
            params.append(actor)
        if action is not None:
            where.append("a.action = ?")
            params.append(action)
        with self._read() as conn:
            if sample_id is not None:
                where.append("a.sample_pk = ?")
                params.append(self._sample_row(conn, sample_id)["pk"])
            clause = f" WHERE {' AND '.join(where)}" if where else ""
            rows = conn.execute(sql + clause + " ORDER BY a.pk", params).fetchall()
        entries = [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], _details(r[6]), r[7], r[8]) for r in rows]
        if since is None and until is None:
            return entries
        start, end = _aware(since), _aware(until)
        return [e for e in entries if (t := e.time) is not None and (start is None or t >= start)
                and (end is None or t < end)]

    def verify_audit(self) -> AuditCheck:
        """Check the whole audit chain (every entry's hash and link, the count, the head, the
        triggers). What it can and cannot detect: docs/store.md. Also updates :attr:`audit_problem`."""
        check = self._check_audit(None)
        self.audit_problem = None if check.ok else check
        return check

    def _check_audit(self, tail: int | None) -> AuditCheck:
        try:
            with self._read() as conn:
                return check_chain(conn, tail)
        except StoreError as err:
            return AuditCheck(False, 0, None, f"the audit log cannot be read: {err}", tail is None)

    # -------------------------------------------------------------------------------- backup
    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A consistent copy of the whole database at ``dest`` (SQLite online backup), safe to
        take while the application is writing. Returns the destination path."""
        dest_path = Path(dest)
        if dest_path.resolve() == self.path.resolve():
            raise StoreError(f"{dest_path}: a backup cannot overwrite the database itself")
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        with self._read() as conn:
            target = sqlite3.connect(str(dest_path))
            try:
                conn.backup(target)
            finally:
                target.close()
        return dest_path


__all__ = [
    "DB_FILE_NAME",
    "MAX_HASHED_FILE_BYTES",
    "MIGRATIONS",
    "REVIEW_CLASSES",
    "SCHEMA_VERSION",
    "STORED_CONTENT",
    "AuditCheck",
    "AuditEntry",
    "ImageRecord",
    "ResultStore",
    "Sample",
    "SignOffError",
    "StoreError",
    "default_db_path",
    "hash_file",
    "migrate",
]
