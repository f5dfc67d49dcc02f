"""The result store's connections and transactions, for both engines, through SQLAlchemy Core.

:class:`engine.store.results.ResultStore` opens a :class:`Database` — an SQLite file (the embedded
default) or a lab's PostgreSQL server, chosen by URL — and every operation of the store
(:mod:`engine.store.samples`, :mod:`~engine.store.images`, :mod:`~engine.store.predictions`,
:mod:`~engine.store.review`, ...) reads through :meth:`Database.read` and writes through
:meth:`Database.write`. The SQL is written once, in the subset both engines run alike (``?``
parameters, ``IS NOT DISTINCT FROM``, ``ON CONFLICT``, ``RETURNING``); :class:`Conn` hands it to
SQLAlchemy as bound ``text()`` statements.

* **SQLite**: one connection, serialised by a re-entrant lock, each write one ``BEGIN IMMEDIATE``
  transaction (SQLite's own write lock: several processes may share the file). Any thread may
  call; calls are short.
* **PostgreSQL**: a connection pool; each read and each write checks out a connection of its own,
  so workstations and threads run at once. A write is one transaction; the audit head row is
  locked first (:func:`engine.store.audit.append`), so the chain never forks.

On either engine an operation may read inside its own write (a sign-off checks the predictions in
the transaction that records it): a nested :meth:`read` or :meth:`write` on the same thread uses
the transaction already open.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Connection, CursorResult, Engine

from engine.store.errors import StoreError, StoreUnavailableError

SQLITE, POSTGRESQL = "sqlite", "postgresql"


class Row(tuple):
    """One result row: a tuple that also answers ``row["column"]`` and ``keys()``, like the
    stdlib's ``sqlite3.Row``, on both engines."""

    _index: Mapping[str, int]

    def __new__(cls, values: Sequence[Any], index: Mapping[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


class Result:
    """What :meth:`Conn.execute` returns: rows as :class:`Row`, ``rowcount``."""

    def __init__(self, result: CursorResult):
        self._result = result
        self.rowcount = result.rowcount
        self._index = {k: i for i, k in enumerate(result.keys())} if result.returns_rows else {}
        #: The result's column names.
        self.columns: tuple[str, ...] = tuple(self._index)

    def fetchone(self) -> Any:  # a Row, or None (Any, as sqlite3's own, so callers index it directly)
        row = self._result.fetchone()
        return None if row is None else Row(tuple(row), self._index)

    def fetchall(self) -> list[Row]:
        return [Row(tuple(r), self._index) for r in self._result.fetchall()]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|:")


@lru_cache(maxsize=1024)
def _bound(sql: str, named: bool = False) -> tuple[Any, int]:
    """``sql`` with its ``?`` parameters as SQLAlchemy's ``:p0, :p1...`` (quoted text left alone,
    a bare colon escaped), and how many there are; ``named``: the statement's own ``:name``
    parameters are kept."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        token = match.group(0)
        if token == "?":
            count += 1
            return f":p{count - 1}"
        if token == ":":
            return ":" if named else r"\:"
        return token.replace(":", r"\:")

    return text(_PARAM.sub(replace, sql)), count


class Conn:
    """The connection of the caller's read or transaction: ``execute(sql, params)`` with ``?``
    parameters, on either engine. ``dialect`` is ``"sqlite"`` or ``"postgresql"``."""

    def __init__(self, connection: Connection, dialect: str):
        self.connection = connection
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Result:
        if isinstance(params, Mapping):  # the statement's own :name parameters
            return Result(self.connection.execute(_bound(sql, True)[0], dict(params)))
        statement, count = _bound(sql)
        if count != len(params):
            raise StoreError(f"internal error: {count} parameters in the statement, {len(params)} given")
        return Result(self.connection.execute(statement, {f"p{i}": v for i, v in enumerate(params)}))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1:  # one row: a plain execute (no driver batching set up for it)
            self.execute(sql, rows[0])
            return
        statement, _ = _bound(sql)
        if rows:
            self.connection.execute(statement, [{f"p{i}": v for i, v in enumerate(r)} for r in rows])


def describe_error(err: BaseException) -> str:
    """A database driver's error in one line, without SQLAlchemy's statement dump."""
    orig = getattr(err, "orig", None) or err
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


class Database:
    """The store's engine and its transactions (see the module docstring). ``path`` names the
    database in every message: the SQLite file, or the PostgreSQL URL without its password."""

    def __init__(self, path: Path | str, engine: Engine):
        self.path = path
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.lock = threading.RLock()
        self._local = threading.local()
        self._closed = False
        # SQLite: the one connection every call shares (under the lock), in autocommit mode so
        # that this class alone says where a transaction begins and ends.
        self._sqlite: Connection | None = engine.connect() if self.dialect == SQLITE else None

    @property
    def name(self) -> str:
        """The file's name, or the lab database's name: for messages."""
        return self.path.name if isinstance(self.path, Path) else self.path.rsplit("/", 1)[-1]

    def close(self) -> None:
        """Close the connections (checkpointing SQLite's WAL). Later calls raise :class:`StoreError`."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._sqlite is not None:
                    self._sqlite.close()
            finally:
                self.engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the result database is closed")

    def _error(self, err: BaseException, doing: str = "database error") -> StoreError:
        if self._lost_server(err):
            return StoreUnavailableError(f"{self.path}: the lab database server cannot be reached; nothing was "
                                         f"written ({describe_error(err)})")
        return StoreError(f"{self.path}: {doing}: {describe_error(err)}")

    def _lost_server(self, err: BaseException) -> bool:
        """Whether ``err`` says the server went away (the call may be retried), not that the
        statement was wrong: SQLAlchemy's disconnect detection, or psycopg's OperationalError
        (connecting refused, connection closed) on a lab database."""
        if not isinstance(err, sa_exc.DBAPIError) or self.dialect == SQLITE:
            return False
        return bool(err.connection_invalidated) or isinstance(err, sa_exc.OperationalError)

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """A connection to read with; a database error becomes a :class:`StoreError`."""
        current = getattr(self._local, "conn", None)
        if current is not None:  # inside this thread's own read or write
            yield current
            return
        if self._sqlite is not None:
            with self.lock:
                self._check_open()
                conn = self._local.conn = Conn(self._sqlite, SQLITE)
                try:
                    yield conn
                except sa_exc.DBAPIError as err:
                    raise self._error(err) from err
                finally:
                    self._local.conn = None
            return
        self._check_open()
        try:
            with self.engine.connect() as connection:
                conn = self._local.conn = Conn(connection, self.dialect)
                try:
                    yield conn
                finally:
                    self._local.conn = None
                    connection.rollback()  # a read commits nothing
        except sa_exc.DBAPIError as err:
            raise self._error(err) from err

    @contextmanager
    def write(self) -> Iterator[Conn]:
        """One short transaction, committed on exit (rolled back on any exception)."""
        current = getattr(self._local, "conn", None)
        if current is not None and getattr(self._local, "writing", False):
            yield current  # already in this thread's transaction
            return
        if current is not None:
            raise StoreError("internal error: a write was started inside a read")
        if self._sqlite is not None:
            with self.lock:
                self._check_open()
                raw = self._sqlite
                try:
                    raw.exec_driver_sql("BEGIN IMMEDIATE")
                except sa_exc.DBAPIError as err:
                    raise self._error(err, "cannot write to the result database") from err
                self._local.conn, self._local.writing = Conn(raw, SQLITE), True
                try:
                    yield self._local.conn
                    raw.exec_driver_sql("COMMIT")
                except BaseException as exc:
                    if raw.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                        raw.exec_driver_sql("ROLLBACK")
                    if isinstance(exc, sa_exc.DBAPIError):
                        raise self._error(exc) from exc
                    raise
                finally:
                    self._local.conn, self._local.writing = None, False
            return
        self._check_open()
        try:
            with self.engine.begin() as connection:
                self._local.conn, self._local.writing = Conn(connection, self.dialect), True
                try:
                    yield self._local.conn
                finally:
                    self._local.conn, self._local.writing = None, False
        except sa_exc.DBAPIError as err:
            raise self._error(err) from err

    def sample_row(self, conn: Conn, sample_id: str) -> Row:
        """The ``samples`` row of ``sample_id``; :class:`StoreError` when there is none. In a
        PostgreSQL write the row is locked until the transaction ends, so two workstations
        changing one sample (a sign-off and a review, two sign-offs) go one after the other, each
        seeing what the other committed; SQLite's write transaction already holds the whole file."""
        lock = " FOR UPDATE" if conn.dialect == POSTGRESQL and getattr(self._local, "writing", False) else ""
        row = conn.execute(f"SELECT * FROM samples WHERE sample_id = ?{lock}", (sample_id,)).fetchone()
        if row is None:
            raise StoreError(f"no sample {sample_id!r} in {self.path}")
        return row


__all__ = ["POSTGRESQL", "SQLITE", "Conn", "Database", "Result", "Row", "describe_error"]
