"""Live shared state: what other connections changed in the store since this one last looked.

Every change of the store appends an audit entry in its own transaction (:func:`engine.store.rows.audit`),
and audit entries are appended one transaction after another (:func:`engine.store.audit.append`
locks the head row first), so their primary keys grow in commit order. "What changed since I last
looked" is therefore "the audit entries after the last pk I saw": :class:`ChangeWatcher` keeps
that pk and reads the entries after it, turning them into one :class:`StoreChange`.

When it looks differs by engine:

* **SQLite**: every :data:`SQLITE_POLL_S` (one indexed query on the store's own connection).
* **PostgreSQL**: ``audit()`` also runs ``pg_notify`` (:data:`NOTIFY_CHANNEL`; PostgreSQL sends
  the notification at commit, once per transaction and payload). The watcher ``LISTEN`` s on a
  connection of its own (not from the store's pool: it stays idle in ``LISTEN`` for hours) and
  reads the entries soon after a notification, at most every :data:`MIN_READ_INTERVAL_S`. It also
  reads every :data:`PG_POLL_S` whatever it heard, and at once after (re)connecting, so a
  notification missed while the connection was down is still caught.

A lost server never ends the watcher: it reports nothing, logs the problem once
(:attr:`ChangeWatcher.problem`), and tries again after 1, 2, 4 ... up to :data:`MAX_BACKOFF_S`
seconds. :meth:`ChangeWatcher.close` may be called from any thread and stops a waiting
:meth:`~ChangeWatcher.wait` or :meth:`~ChangeWatcher.changes` within :data:`STOP_SLICE_S`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.core.progress import CancelToken
from engine.store.database import POSTGRESQL, Database
from engine.store.errors import StoreError

log = logging.getLogger(__name__)

#: The PostgreSQL channel every store change is announced on (payload: the sample's pk, or "").
NOTIFY_CHANNEL = "allsight_changes"
#: How often an SQLite store's audit log is read.
SQLITE_POLL_S = 1.0
#: How often a PostgreSQL store's audit log is read while notifications arrive (a safety net),
#: and while the listening connection is down (then the only way to notice).
PG_POLL_S = 10.0
PG_POLL_UNLISTENED_S = 2.0
#: Reads after notifications are at least this far apart: another workstation's batch commits
#: dozens of results a second, and one read gathers them all.
MIN_READ_INTERVAL_S = 0.5
#: The longest one blocking wait lasts before the stop flag is looked at again.
STOP_SLICE_S = 0.25
#: The longest wait before trying a lost server again.
MAX_BACKOFF_S = 30.0
#: The listening connection's connect timeout (libpq's minimum is 2 s): close() waits for it at most.
LISTEN_CONNECT_TIMEOUT_S = 3
#: Entries read per query (a long gap is read in several pages).
PAGE = 5000


@dataclass(frozen=True)
class StoreChange:
    """What the audit entries ``first_pk``..``last_pk`` changed. ``sample_ids``: the *current*
    IDs of the samples they are about (created, classified, reviewed, signed off, reopened,
    renamed, images added); ``renamed``: ``(old id, new id)`` of each rename, in order, so that
    a front end still holding an old ID can follow; ``actions``: the audit actions seen (also
    those about no sample: accounts, models, policy); ``n_entries``: how many entries."""

    first_pk: int
    last_pk: int
    n_entries: int
    sample_ids: frozenset[str]
    renamed: tuple[tuple[str, str], ...] = ()
    actions: frozenset[str] = frozenset()

    def touches(self, sample_id: str | None) -> bool:
        """Whether ``sample_id`` (current or renamed-from) is one of the samples changed."""
        return sample_id is not None and (sample_id in self.sample_ids
                                          or any(old == sample_id for old, _new in self.renamed))

    def current_id(self, sample_id: str) -> str:
        """``sample_id`` after the renames (itself when it was not renamed)."""
        for old, new in self.renamed:
            if old == sample_id:
                sample_id = new
        return sample_id


def _renames(details: str | None) -> tuple[str, str] | None:
    try:
        change = json.loads(details or "{}").get("changes", {}).get("sample_id")
    except (ValueError, AttributeError):
        return None
    if isinstance(change, list) and len(change) == 2:
        return str(change[0]), str(change[1])
    return None


class ChangeWatcher:
    """Watches a store's :class:`~engine.store.database.Database` for changes (module docstring).
    Only entries committed after the watcher was made count; ``since`` starts it elsewhere.
    Use from one thread at a time (one GUI worker); :meth:`close` from any thread."""

    def __init__(self, db: Database, *, since: int | None = None, poll_s: float | None = None):
        self._db = db
        self.listening = db.dialect == POSTGRESQL
        self._poll_s = poll_s if poll_s is not None else (PG_POLL_S if self.listening else SQLITE_POLL_S)
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held by wait(): close() closes the connection after it
        self._listener: Any = None  # the psycopg connection in LISTEN (PostgreSQL)
        self._listen_retry_at = 0.0
        self._listen_backoff = 0.0
        self._read_backoff = 0.0
        self._next_read = 0.0
        self._last_read = 0.0
        #: The last audit pk seen (``None``: not read yet, the server being unreachable).
        self.last_pk: int | None = since
        #: What keeps the watcher from looking, in words (``None``: nothing).
        self.problem: str | None = None
        if since is None:
            try:
                self.last_pk = self._head()
            except StoreError as err:
                self._lost(f"the result database cannot be read: {err}")
        if self.listening:
            self._connect_listener()

    # ------------------------------------------------------------------ the public calls
    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float) -> StoreChange | None:
        """Block up to ``timeout`` seconds; what changed since the last call, as soon as it is
        seen, or ``None`` (nothing changed, the store cannot be reached, or :meth:`close`)."""
        with self._busy:
            deadline = time.monotonic() + max(0.0, timeout)
            try:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if now >= self._next_read:
                        change = self._read()
                        if change is not None:
                            return change
                    now = time.monotonic()
                    if now >= deadline:
                        return None
                    self._pause(min(deadline, self._next_read) - now)
                return None
            finally:
                if self._stop.is_set():
                    self._close_listener()

    def changes(self, cancel: CancelToken | None = None) -> Iterator[StoreChange]:
        """Every change from now on, until :meth:`close` or ``cancel`` (then the generator ends;
        a cancelled token raises :class:`~engine.core.errors.Cancelled`, as every long operation does)."""
        while not self._stop.is_set():
            if cancel is not None:
                cancel.raise_if_cancelled()
            change = self.wait(STOP_SLICE_S * 4)
            if change is not None:
                yield change

    def close(self) -> None:
        """Stop watching (any thread): a waiting call returns ``None`` within :data:`STOP_SLICE_S`
        (a reconnection being attempted: within :data:`LISTEN_CONNECT_TIMEOUT_S`). Idempotent."""
        self._stop.set()
        with self._busy:
            self._close_listener()

    def __enter__(self) -> ChangeWatcher:  # noqa: PYI034 (Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading the audit log
    def _head(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(pk), 0) FROM audit_log").fetchone()[0])

    def _read(self) -> StoreChange | None:
        """The entries after :attr:`last_pk` as one change (``None``: none, or unreadable)."""
        now = time.monotonic()
        self._last_read = now
        self._next_read = now + (self._poll_s if self._listener is not None or not self.listening
                                 else min(self._poll_s, PG_POLL_UNLISTENED_S))
        try:
            if self.last_pk is None:  # never read: only what comes after now counts
                self.last_pk = self._head()
                self._recovered()
                return None
            rows = self._entries_after(self.last_pk)
        except StoreError as err:
            self._lost(f"the result database cannot be read: {err}")
            self._read_backoff = min(MAX_BACKOFF_S, max(1.0, self._read_backoff * 2))
            self._next_read = time.monotonic() + self._read_backoff
            return None
        self._read_backoff = 0.0
        self._recovered()
        if not rows:
            return None
        first = self.last_pk + 1
        self.last_pk = int(rows[-1][0])
        ids = frozenset(str(r[3]) for r in rows if r[3] is not None)
        renamed = tuple(pair for r in rows if r[1] == "update_sample" and (pair := _renames(r[4])) is not None)
        return StoreChange(first, self.last_pk, len(rows), ids, renamed, frozenset(str(r[1]) for r in rows))

    def _entries_after(self, pk: int) -> list[Any]:
        out: list[Any] = []
        with self._db.read() as conn:
            while True:
                page = conn.execute(
                    "SELECT a.pk, a.action, a.sample_pk, s.sample_id, "
                    "CASE WHEN a.action = 'update_sample' THEN a.details END "
                    "FROM audit_log a LEFT JOIN samples s ON s.pk = a.sample_pk "
                    "WHERE a.pk > ? ORDER BY a.pk LIMIT ?", (pk, PAGE)).fetchall()
                out.extend(page)
                if len(page) < PAGE:
                    return out
                pk = int(page[-1][0])

    # ------------------------------------------------------------------ waiting
    def _pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` (never longer than one stop slice), listening when there is a
        listening connection; a notification brings the next read forward."""
        seconds = max(0.0, min(seconds, STOP_SLICE_S))
        if not self.listening:
            self._stop.wait(seconds)
            return
        if self._listener is None and time.monotonic() >= self._listen_retry_at:
            self._connect_listener()
        if self._listener is None:
            self._stop.wait(seconds)
            return
        import psycopg

        try:
            heard = any(True for _ in self._listener.notifies(timeout=seconds, stop_after=1))
        except TypeError:  # psycopg before 3.2 cannot wait with a timeout: read the log instead
            log.info("%s: live updates: psycopg %s cannot wait for notifications; reading every %.0f s",
                     self._db.path, psycopg.__version__, PG_POLL_UNLISTENED_S)
            self._close_listener()
            self.listening, self._poll_s = False, PG_POLL_UNLISTENED_S
            return
        except (psycopg.Error, OSError) as err:
            self._listener_lost(err)
            return
        if heard:  # soon, but not more often than MIN_READ_INTERVAL_S
            self._next_read = min(self._next_read, max(time.monotonic(), self._last_read + MIN_READ_INTERVAL_S))

    # ------------------------------------------------------------------ the listening connection
    def _connect_args(self) -> dict[str, Any]:
        engine = self._db.engine
        _args, params = engine.dialect.create_connect_args(engine.url)
        params.pop("context", None)  # SQLAlchemy's own type adapters: not needed for LISTEN
        return {**params, "connect_timeout": LISTEN_CONNECT_TIMEOUT_S, "application_name": "ALLSight live updates"}

    def _connect_listener(self) -> None:
        import psycopg

        if self._stop.is_set():
            return
        try:
            conn = psycopg.connect(autocommit=True, **self._connect_args())
        except (psycopg.Error, OSError) as err:
            self._listener_lost(err)
            return
        try:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except (psycopg.Error, OSError) as err:
            conn.close()
            self._listener_lost(err)
            return
        self._listener, self._listen_backoff = conn, 0.0
        self._next_read = 0.0  # read at once: what was committed while nobody listened
        self._recovered()

    def _listener_lost(self, err: BaseException) -> None:
        self._close_listener()
        self._listen_backoff = min(MAX_BACKOFF_S, max(1.0, self._listen_backoff * 2))
        self._listen_retry_at = time.monotonic() + self._listen_backoff
        self._next_read = min(self._next_read, time.monotonic() + PG_POLL_UNLISTENED_S)
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        self._lost(f"not listening for changes from other workstations ({text}); "
                   f"trying again in {self._listen_backoff:.0f} s")

    def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
                log.debug("closing the listening connection failed", exc_info=True)

    # ------------------------------------------------------------------ what keeps it from looking
    def _lost(self, problem: str) -> None:
        if problem != self.problem:
            log.warning("%s: live updates: %s", self._db.path, problem)
        self.problem = problem

    def _recovered(self) -> None:
        if self.problem is not None and (self._listener is not None or not self.listening):
            log.info("%s: live updates: working again", self._db.path)
            self.problem = None


__all__ = ["NOTIFY_CHANNEL", "ChangeWatcher", "StoreChange"]
