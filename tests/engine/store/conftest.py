"""The store's tests run against both engines: an SQLite file and a real PostgreSQL server
(tests/pg_server.py; skipped only outside CI when no PostgreSQL is installed)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def store_target(request, tmp_path) -> str:
    """Where a test's result database lives: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "db" / "allsight.sqlite3")
    return request.getfixturevalue("pg_url")


@contextmanager
def raw(store, *, write: bool = False):
    """The store's own connection, for a test to look at (or, ``write``, change) rows behind the
    store's methods, on either engine (``?`` parameters)."""
    db = store._db
    with (db.write() if write else db.read()) as conn:
        yield conn
