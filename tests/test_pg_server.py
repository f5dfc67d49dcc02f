"""The throw-away PostgreSQL server the store's tests run against is real, private and isolated."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa

from tests.pg_server import PostgresServer, fresh_database_url


def _engine(url: str) -> sa.Engine:
    # NullPool: no pooled connection may outlive the test and hold its database open.
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def test_a_fresh_database_stores_and_returns_rows(pg_url):
    engine = _engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE results (id serial PRIMARY KEY, label text NOT NULL)"))
        conn.execute(sa.text("INSERT INTO results (label) VALUES (:a), (:b)"), [{"a": "Benign", "b": "Pro"}])
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, label FROM results ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, "Benign"), (2, "Pro")]
    assert engine.dialect.driver == "psycopg"


def test_fresh_databases_are_separate(pg_server):
    first, second = fresh_database_url(pg_server), fresh_database_url(pg_server)
    assert first != second
    with _engine(first).begin() as conn:
        conn.execute(sa.text("CREATE TABLE only_here (x int)"))
    with _engine(second).connect() as conn:
        tables = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'")).scalar()
    assert tables == 0


def test_it_is_a_real_postgresql_15_or_newer_on_loopback_only(pg_server, pg_url):
    with _engine(pg_url).connect() as conn:
        version = conn.execute(sa.text("SELECT version()")).scalar()
        listen = conn.execute(sa.text("SHOW listen_addresses")).scalar()
        port = conn.execute(sa.text("SHOW port")).scalar()
    major = re.match(r"PostgreSQL (\d+)", version)
    assert major and int(major.group(1)) >= 15, version
    assert listen == "127.0.0.1"
    assert int(port) == pg_server.port
    assert pg_server.psql("SHOW fsync") == "off"  # the fast-test settings took effect


def test_a_least_privilege_role_logs_in_but_cannot_create_tables(pg_server, pg_url):
    role = f"reader_{uuid.uuid4().hex[:8]}"  # roles are server-wide: unique, unlike databases
    pg_server.create_role(role, "s3cret'pw")
    dbname = pg_url.rsplit("/", 1)[1]
    with _engine(pg_server.url(dbname, user=role, password="s3cret'pw")).connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() == role
        # PostgreSQL 15+ no longer lets PUBLIC create in the public schema.
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("CREATE TABLE not_allowed (x int)"))
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        _engine(pg_server.url(dbname, user=role, password="wrong")).connect()


def test_stop_removes_the_server_and_its_folder(pg_server):
    server = PostgresServer(pg_server.bin_dir).start()
    folder, url = server.folder, server.url("postgres")
    server.stop()
    assert not folder.exists()
    with pytest.raises(sa.exc.OperationalError):
        _engine(url).connect()
