"""Opening the result database on either engine: an SQLite file or a lab's PostgreSQL server.

:func:`open_database` takes what ``--db`` and the settings hold — a file path, or a URL
(``postgresql://user@host:5432/allsight``; ``sqlite:///path`` also works) — and returns an open
:class:`~engine.store.database.Database` at the current schema:

* **SQLite**: the file is recognised before anything is written (:func:`engine.store.schema.recognise`),
  migrated through its version chain, and switched to WAL, as before.
* **PostgreSQL**: connected with psycopg 3; an empty database is created at the current schema and
  an older one upgraded by Alembic (:mod:`engine.store.migrations`); one written by a newer
  ALLSight is refused. A wrong password, an unreachable host or a missing database each get one
  clear message, without the password.

The password of a lab database comes from the URL, ``$ALLSIGHT_DB_PASSWORD`` or libpq's own
``~/.pgpass``; the settings file never holds it (docs/store.md).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from engine.store.database import Database, describe_error
from engine.store.errors import StoreError, StoreLoginError
from engine.store.schema import SCHEMA_VERSION, migrate, recognise

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
#: PostgreSQL's SQLSTATE for "permission denied".
INSUFFICIENT_PRIVILEGE = "42501"
#: How long a connection attempt to a lab server may take before it is called unreachable.
CONNECT_TIMEOUT_S = 10


def is_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a database by URL (``scheme://...``) rather than a file."""
    return isinstance(target, str) and "://" in target.split("?", 1)[0][:40]


def parse_url(target: str) -> URL:
    """The SQLAlchemy URL for ``target``, with psycopg 3 as PostgreSQL's driver and
    ``$ALLSIGHT_DB_PASSWORD`` as the password when the URL has none."""
    try:
        url = make_url(target)
    except sa_exc.ArgumentError:
        raise StoreError(f"{target!r} is not a database URL (expected postgresql://user@host:5432/name)") from None
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise StoreError(f"{url.get_backend_name()!r} databases are not supported: use a file (SQLite) or "
                         "postgresql://user@host:5432/name")
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        if url.password is None and os.environ.get("ALLSIGHT_DB_PASSWORD"):
            url = url.set(password=os.environ["ALLSIGHT_DB_PASSWORD"])
    return url


def safe_label(url: URL) -> str:
    """The URL as shown to people and written to logs: never with its password (neither the
    ``user:password@`` part nor a libpq ``?password=`` option)."""
    query = {k: v for k, v in url.query.items() if k.lower() != "password"}
    return url.set(drivername=url.get_backend_name(), query=query).render_as_string(hide_password=True)


def open_database(target: str | os.PathLike[str]) -> Database:
    """An open :class:`Database` for ``target`` (a path or a URL), at the current schema."""
    if is_url(target):
        url = parse_url(str(target))
        if url.get_backend_name() == "sqlite":
            if not url.database:
                raise StoreError("an sqlite:/// URL needs a file path")
            return open_sqlite(Path(url.database))
        return open_postgresql(url)
    return open_sqlite(Path(target))


# ---------------------------------------------------------------------------------- SQLite
def open_sqlite(path: Path) -> Database:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"{path}: cannot create the folder for the result database: {err}") from err
    # Before the file is opened for writing: another application's database (or a JPEG given
    # as --db) is refused with its bytes unchanged.
    recognise(path)
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        raise StoreError(f"{path}: cannot open the result database: {err}") from err
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        # Migrate (which checks the version, and that a "new" file is still empty) before
        # switching to WAL: a refused file keeps its journal mode.
        migrate(conn)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("%s: WAL journal mode unavailable (got %r); using it anyway", path, mode)
        conn.execute("PRAGMA synchronous=NORMAL")
    except StoreError as err:
        conn.close()
        if str(path) in str(err):
            raise
        raise StoreError(f"{path}: {err}") from err
    except sqlite3.Error as err:
        conn.close()
        raise StoreError(f"{path}: not a usable ALLSight result database: {err}") from err
    # SQLAlchemy on this one connection, in autocommit mode: Database says where transactions
    # begin (BEGIN IMMEDIATE) and end.
    engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool, isolation_level="AUTOCOMMIT")
    return Database(path, engine)


# ------------------------------------------------------------------------------ PostgreSQL
def connect_error(label: str, err: BaseException) -> StoreError:
    """The one-line error for a failed connection to the lab database (never with the password)."""
    text = describe_error(err)
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return StoreLoginError(f"{label}: the lab database refused the user name or password ({text})")
    if "does not exist" in low and "database" in low:
        why = "there is no such database on the server"
    elif any(w in low for w in ("connection refused", "could not translate host", "timeout", "timed out",
                                "no route to host", "name or service not known", "network is unreachable")):
        why = "the lab database server cannot be reached (is it running, and is the host and port right?)"
    else:
        why = "cannot connect to the lab database"
    return StoreError(f"{label}: {why} ({text})")


def postgresql_engine(url: URL) -> Engine:
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                           connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "ALLSight"})

    @event.listens_for(engine, "connect")
    def _utc(dbapi_connection, _record):  # stored times are ISO text; the session zone only affects now()
        with dbapi_connection.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()

    return engine


def open_postgresql(url: URL) -> Database:
    label = safe_label(url)
    engine = postgresql_engine(url)
    try:
        with engine.connect() as connection:
            upgrade_postgresql(connection, label)
            connection.commit()
    except StoreError:
        engine.dispose()
        raise
    except sa_exc.OperationalError as err:
        engine.dispose()
        raise connect_error(label, err) from None
    except sa_exc.DBAPIError as err:
        engine.dispose()
        if getattr(err.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            raise StoreError(f"{label}: the account {url.username!r} may not use the ALLSight tables of this database "
                             f"({describe_error(err)}); the database's owner grants it with "
                             f"'main.py store grant URL {url.username}' (docs/store.md)") from None
        raise StoreError(f"{label}: not a usable ALLSight result database: {describe_error(err)}") from None
    return Database(label, engine)


def schema_version(connection, label: str) -> int | None:
    """The ALLSight schema version of a PostgreSQL database, ``None`` when it is empty;
    :class:`StoreError` for a database that holds another application's tables."""
    from engine.store.pg_schema import REVISIONS

    names = {r[0] for r in connection.exec_driver_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
    if not names:
        return None
    if "alembic_version" not in names or "audit_log" not in names:
        raise StoreError(f"{label}: this database holds other tables ({', '.join(sorted(names)[:5])}...), "
                         "not an ALLSight result database; it was left unchanged")
    revision = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    versions = {rev: version for version, rev in REVISIONS.items()}
    if revision not in versions:
        raise StoreError(
            f"{label}: the result database has schema revision {revision!r}, written by a newer ALLSight; this "
            f"version understands up to {SCHEMA_VERSION}. Update ALLSight on this workstation.")
    return versions[revision]


def upgrade_postgresql(connection, label: str) -> None:
    """Create or upgrade the schema with Alembic, under a lock so that two workstations opening
    a new lab database at once do not both create it. Alembic is imported only when there is
    something to do: its import took 0.13 s of every open (docs/store.md)."""
    from engine.store.pg_schema import REVISIONS

    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7234151)")  # "ALLS": one migrator at a time
    found = schema_version(connection, label)
    if found == SCHEMA_VERSION:
        return
    from alembic import command
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = connection
    log.info("%s: %s the result database schema (revision %s)", label,
             "creating" if found is None else "upgrading", REVISIONS[SCHEMA_VERSION])
    command.upgrade(config, REVISIONS[SCHEMA_VERSION])


__all__ = ["BUSY_TIMEOUT_S", "connect_error", "is_url", "open_database", "parse_url", "postgresql_engine",
           "safe_label", "schema_version"]
