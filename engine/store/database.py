"""The result store's one connection, its lock and its transactions.

:class:`engine.store.results.ResultStore` opens the SQLite file and hands the connection to a
:class:`Database`; every operation of the store (:mod:`engine.store.samples`,
:mod:`engine.store.images`, :mod:`engine.store.predictions`, :mod:`engine.store.review`) then
reads through :meth:`Database.read` and writes through :meth:`Database.write`. The lock is
re-entrant so that an operation may read inside its own write (a sign-off checks the predictions
in the transaction that records it), and any thread may call: calls are short, and file hashing
happens between a read and a write, outside the lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.store.errors import StoreError


class Database:
    """One open connection (``check_same_thread=False``, autocommit) serialised by a re-entrant
    lock. ``path`` names the file in every error message."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Later calls raise :class:`StoreError`."""
        with self.lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; an SQLite error becomes a :class:`StoreError`."""
        with self.lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the result database is closed")
            try:
                yield self._conn
            except sqlite3.Error as err:
                raise StoreError(f"{self.path}: database error: {err}") from err

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short transaction, committed on exit (rolled back on any exception)."""
        with self.lock:
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

    def sample_row(self, conn: sqlite3.Connection, sample_id: str) -> sqlite3.Row:
        """The ``samples`` row of ``sample_id``; :class:`StoreError` when there is none."""
        row = conn.execute("SELECT * FROM samples WHERE sample_id = ?", (sample_id,)).fetchone()
        if row is None:
            raise StoreError(f"no sample {sample_id!r} in {self.path}")
        return row


__all__ = ["Database"]
