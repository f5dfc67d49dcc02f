"""pytest fixtures for a real PostgreSQL: one server per test session, one fresh database per test.

Registered in tests/conftest.py. Without PostgreSQL the tests that need it are skipped, except in
CI (CI=true), where they fail: CI must run the result store's suite against both engines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg_server import PostgresServer, find_pg_bin, fresh_database_url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server (127.0.0.1, free port), started once, deleted at the end."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = ("PostgreSQL not found (no /usr/lib/postgresql/*/bin with initdb and pg_ctl, nor "
                  "ALLSIGHT_PG_BIN): install the 'postgresql' package to run the store's tests against it")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database of its own, dropped after the test."""
    url = fresh_database_url(pg_server)
    yield url
    pg_server.drop_database(url.rsplit("/", 1)[1])
