"""pytest fixtures for a real PostgreSQL: one server per test session, one fresh database per test.

Registered in tests/conftest.py. Without PostgreSQL the tests that need it are skipped, except in
CI (CI=true), where they fail: CI must run the result store's suite against both engines.
"""

from __future__ import annotations

import os
import uuid
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


#: Durable, as a lab's server is: the session's server (fsync and synchronous_commit off) may lose
#: committed transactions in a crash, which is what PostgresServer.halt() is.
DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"


@pytest.fixture
def own_pg_server() -> Iterator[PostgresServer]:
    """A durable server of this test's own: the test may stop and start it again (halt/resume),
    which the session's shared one must not be."""
    if find_pg_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed: CI must run the tests that stop a server")
        pytest.skip("PostgreSQL is not installed")
    server = PostgresServer(settings=DURABLE).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab_accounts(pg_server) -> Iterator[tuple[str, str, str]]:
    """A lab database owned by its own owner role (not a superuser), and an app role with no
    privileges yet: ``(owner URL, app URL, app role)``."""
    tag = uuid.uuid4().hex[:8]
    owner, app, name = f"owner_{tag}", f"app_{tag}", f"lab_{tag}"
    pg_server.create_role(owner, "owner-pw")
    pg_server.create_role(app, "app-pw")
    pg_server.create_database(name, owner=owner)
    yield pg_server.url(name, owner, "owner-pw"), pg_server.url(name, app, "app-pw"), app
    pg_server.drop_database(name)
    pg_server.psql(f"DROP ROLE {app}; DROP ROLE {owner}")
