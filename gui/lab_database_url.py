"""The lab database setting's URL, Qt-free: checking it, taking a password out of it, naming it
for people, and testing a connection to it without changing anything.

The setting (``gui.settings.Settings.lab_database``) is "" (this workstation's own SQLite
history) or a ``postgresql://user@host:5432/name`` URL. A password never belongs in it: the
settings file is plain JSON that backups, support bundles and colleagues get to read. The
password comes from libpq's ``~/.pgpass``, ``$ALLSIGHT_DB_PASSWORD`` or the person at start-up
(:mod:`gui.lab_database`), and lives in memory only; :func:`without_password` is how every path
that writes or shows the URL drops it.

Kept apart from :mod:`gui.lab_database` (widgets) so that :mod:`gui.settings`, which is plain
data, can use it without loading Qt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# SQLAlchemy is imported where it is used: gui.settings imports this module, and reading the
# settings should not wait for it.

#: What the settings dialog shows in the empty URL field.
URL_EXAMPLE = "postgresql://user@host:5432/allsight"


def _parse(text: str) -> URL | None:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(text.strip())
    except (sa_exc.ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        return None


def url_problem(text: str) -> str:
    """Why ``text`` cannot be the lab database setting ("" when it can: blank, or a PostgreSQL
    URL naming a database). Never repeats the text, which may hold a password."""
    if not text.strip():
        return ""
    url = _parse(text)
    if url is None:
        return f"The lab database must be a URL such as {URL_EXAMPLE} (or blank for this workstation's own history)."
    if url.get_backend_name() != "postgresql":
        return (f"The lab database must be a PostgreSQL server ({URL_EXAMPLE}); "
                f"{url.get_backend_name()!r} is not one.")
    if not url.database:
        return f"The lab database URL must end with the database's name, as in {URL_EXAMPLE}."
    return ""


def has_password(text: str) -> bool:
    """Whether the URL ``text`` carries a password (``user:secret@host`` or ``?password=``)."""
    url = _parse(text) if text.strip() else None
    return url is not None and (url.password is not None or any(k.lower() == "password" for k in url.query))


def _no_password(url: URL, drivername: str | None = None) -> URL:
    from sqlalchemy.engine import URL
    # Not url.set(password=None): set() reads None as "leave it as it is". libpq also takes
    # ``?password=`` from the query: that goes too.
    return URL.create(drivername or url.drivername, username=url.username, password=None, host=url.host,
                      port=url.port, database=url.database,
                      query={k: v for k, v in url.query.items() if k.lower() != "password"})


def without_password(text: str) -> str:
    """``text`` with its password taken out (unchanged when it has none, or is not a URL).

    Rendered by SQLAlchemy, so a password holding ``@`` or ``:`` cannot leave a piece behind."""
    url = _parse(text) if text.strip() else None
    if url is None or not has_password(text):
        return text.strip()
    return _no_password(url).render_as_string(hide_password=False)


def with_password(text: str, password: str) -> str:
    """The URL ``text`` with ``password`` in it, to open the database (never to store or show)."""
    from sqlalchemy.engine import make_url

    url = make_url(text.strip())
    return url.set(password=password).render_as_string(hide_password=False)


def redacted(value: object) -> str:
    """``value`` as it may appear in the log: a URL with ``***`` for its password, anything else
    that is not a parseable URL as a placeholder (it might hold a password in a form not parsed)."""
    if not isinstance(value, str):
        return repr(value)
    if not value.strip():
        return repr(value)
    url = _parse(value)
    if url is None:
        return "(a text that is not a URL; not shown)"
    shown = repr(_no_password(url).render_as_string(hide_password=False))
    return f"{shown} (its password left out)" if has_password(value) else shown


def display_url(text: str) -> str:
    """The lab database as people see it: ``postgresql://user@host:5432/name``, no driver name,
    no password."""
    url = _parse(text)
    if url is None:
        return "(not a valid URL)"
    return _no_password(url, url.get_backend_name()).render_as_string(hide_password=False)


def check_connection(text: str, password: str | None = None) -> str:
    """Connect to the lab database named by ``text`` (with ``password`` if given, else the URL's,
    ``$ALLSIGHT_DB_PASSWORD`` or ``~/.pgpass``) and say what is there, changing nothing: unlike
    opening the store it neither creates nor upgrades the schema, so testing a URL in the settings
    cannot alter a lab's database. Blocks up to the connect timeout (10 s): call it off the GUI
    thread. Raises :class:`~engine.store.errors.StoreError` (``StoreLoginError`` for a refused
    password) with one line that never holds the password."""
    from sqlalchemy import exc as sa_exc

    from engine.store.database import describe_error
    from engine.store.engines import connect_error, parse_url, postgresql_engine, safe_label, schema_version
    from engine.store.errors import StoreError
    from engine.store.schema import SCHEMA_VERSION

    problem = url_problem(text)
    if problem or not text.strip():
        raise StoreError(problem or "No lab database is set: this workstation keeps its own result history.")
    url = parse_url(with_password(text, password) if password is not None else text.strip())
    label = safe_label(url)
    engine = postgresql_engine(url)
    try:
        with engine.connect() as connection:
            server = connection.exec_driver_sql("SHOW server_version").scalar()
            found = schema_version(connection, label)
            connection.rollback()
    except StoreError:
        raise
    except sa_exc.OperationalError as err:
        raise connect_error(label, err) from None
    except sa_exc.DBAPIError as err:
        raise StoreError(f"{label}: cannot read the lab database: {describe_error(err)}") from None
    finally:
        engine.dispose()
    if found is None:
        what = "The database is empty: ALLSight creates its tables when it next starts with this setting."
    elif found == SCHEMA_VERSION:
        what = f"An ALLSight result database at schema {found}, the one this version uses."
    else:
        what = (f"An ALLSight result database at schema {found}: ALLSight upgrades it to schema "
                f"{SCHEMA_VERSION} when it next starts with this setting.")
    return f"Connected to {display_url(text)} (PostgreSQL {server}). {what}"


__all__ = ["URL_EXAMPLE", "check_connection", "display_url", "has_password", "redacted", "url_problem",
           "with_password", "without_password"]
