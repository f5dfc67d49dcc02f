"""Which result database the window uses: the lab's PostgreSQL server (the ``lab_database``
setting) or this workstation's own SQLite file, and the settings dialog's "Test connection".

At start-up :func:`open_window_store` opens the lab database when one is set. Its password is
never in the settings (:mod:`gui.lab_database_url`): libpq takes it from ``~/.pgpass`` or
ALLSight from ``$ALLSIGHT_DB_PASSWORD``; when the server still refuses, the person is asked
(:func:`ask_password`, a password field), up to :data:`MAX_PASSWORD_TRIES` times, one
connection attempt per password typed. The password stays in memory, in the store's connection
pool (which needs it to reconnect), and is never written or logged.

When the lab database cannot be used (no password given, refused, server unreachable, a schema
written by a newer ALLSight...), the window still opens on the local file, so a person's work
on this workstation is not blocked by the server, and says so once
(:attr:`WindowStore.notice`): what is saved from then on stays on this workstation.

Opening blocks the GUI thread for up to the connect timeout (10 s,
``engine.store.engines.CONNECT_TIMEOUT_S``): acceptable once at start-up, before the window
shows. Testing a connection from the settings dialog happens while the person looks at the
dialog, so :class:`ConnectionTest` runs it on a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from gui import lab_database_url as urls
from gui.workers import TaskError, WorkerPool

if TYPE_CHECKING:
    from engine.store.results import ResultStore
    from gui.settings import Settings

log = logging.getLogger("allsight.gui.lab_database")

LOCAL_LABEL = "Local result history (this workstation)"
#: Passwords asked for in a row before giving up on the lab database (each gets one attempt).
MAX_PASSWORD_TRIES = 3
#: Closing the settings dialog waits this long for a connection test still running (the connect
#: timeout plus a margin): no thread outlives the dialog it reports to.
TEST_WAIT_MS = 15_000

#: ``ask(parent, where, why) -> password or None (cancelled)``.
PasswordPrompt = Callable[[QWidget | None, str, str], "str | None"]


class WindowStore(NamedTuple):
    """What :func:`open_window_store` opened."""

    store: ResultStore | None
    #: No database at all could be opened: why (the window then refuses to classify or review).
    error: str | None
    #: Which database is in use, for people: :data:`LOCAL_LABEL` or "Lab database postgresql://…".
    label: str
    #: The lab database is set but was not used, and why: to be told once (the local one is open).
    notice: str | None = None
    #: :attr:`label` in two words, for the status bar.
    short_label: str = "Local database"


def lab_label(url: str) -> str:
    return f"Lab database {urls.display_url(url)}"


def ask_password(parent: QWidget | None, where: str, why: str) -> str | None:
    """Ask for the lab database's password (typed hidden); None when the person cancels."""
    text, ok = QInputDialog.getText(parent, "ALLSight — lab database password",
                                    f"{why}\n\nPassword for {where}\n(used until ALLSight closes; never saved)",
                                    QLineEdit.EchoMode.Password, "")
    return text if ok else None


def _prompt_reason(user: str, tries: int) -> str:
    if tries == 0:
        return f"The lab database asks for the password of {user!r}."
    return f"That password was refused. Try again ({tries + 1} of {MAX_PASSWORD_TRIES})."


def _user(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).username or "(no user name)"


def open_lab_store(url: str, parent: QWidget | None = None, *,
                   ask: PasswordPrompt = ask_password) -> ResultStore:
    """The lab database at ``url``, asking for its password when the server refuses to go without
    one. Raises :class:`~engine.store.errors.StoreError`: the server's refusal, or
    ``StoreLoginError`` "no password was given" when the person cancelled."""
    from engine.store.errors import StoreLoginError
    from engine.store.results import ResultStore

    password: str | None = None
    tries = 0
    while True:
        try:
            return ResultStore.open(url if password is None else urls.with_password(url, password))
        except StoreLoginError:
            if tries >= MAX_PASSWORD_TRIES:
                raise
            password = ask(parent, urls.display_url(url), _prompt_reason(_user(url), tries))
            if password is None:
                raise StoreLoginError(f"{urls.display_url(url)}: no password was given") from None
            tries += 1


def _fallback_notice(why: str) -> str:
    return (f"The lab database was not opened — {why}. ALLSight opened this workstation's own result "
            "history instead: what is classified, reviewed or signed off now is saved on this workstation, "
            "not in the lab's database. Check the lab database in Edit ▸ Settings… and start ALLSight again.")


def open_window_store(settings: Settings, parent: QWidget | None = None, *,
                      ask: PasswordPrompt = ask_password) -> WindowStore:
    """The window's result database: the lab's when ``settings.lab_database`` is set and it opens,
    else this workstation's own (:func:`engine.store.results.default_db_path`). Never raises for
    a database that cannot be opened: :attr:`WindowStore.error` / ``notice`` say why."""
    from engine.store.errors import StoreError

    url = settings.lab_database.strip()
    why = None  # why the lab database that is set was not used
    if url:
        try:
            if urls.url_problem(url):  # settings read from a file were checked; these were made in code
                raise StoreError(urls.url_problem(url))
            store = open_lab_store(url, parent, ask=ask)
        except StoreError as exc:
            why = str(exc)
            log.warning("lab database not used, the local result history instead: %s", exc)
        else:
            log.info("result history: %s", lab_label(url))
            return WindowStore(store, None, lab_label(url), short_label="Lab database")
    local = _open_local()
    if isinstance(local, str):  # neither: no result history at all
        error = local if why is None else (f"The lab database was not opened — {why}; and this workstation's "
                                           f"own result history cannot be opened either: {local}")
        return WindowStore(None, error, "No result history", short_label="No result history")
    return WindowStore(local, None, LOCAL_LABEL, None if why is None else _fallback_notice(why))


def _open_local() -> ResultStore | str:
    from engine.store.results import ResultStore, StoreError, default_db_path

    try:
        return ResultStore.open(default_db_path())
    except StoreError as exc:
        log.error("result history unavailable: %s", exc)
        return str(exc)


def _check(url: str, password: str | None) -> str:  # worker thread
    return urls.check_connection(url, password)


class ConnectionTest(QObject):
    """The settings dialog's "Test connection": :func:`gui.lab_database_url.check_connection` on a
    worker thread (it may wait 10 s for an unreachable server), asking for a password in the GUI
    thread when the server wants one, then ``finished(ok, text)``. :meth:`shutdown` waits for a
    test still running; the dialog calls it when it closes."""

    finished = Signal(bool, str)

    def __init__(self, parent: QWidget, *, ask: PasswordPrompt = ask_password):
        super().__init__(parent)
        self._parent = parent
        self._ask = ask
        self._pool = WorkerPool(self, max_threads=1)
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self, url: str) -> bool:
        """Test ``url`` (False, nothing started: a test is already running)."""
        if self._running:
            return False
        self._running = True
        self._submit(url, None, 0)
        return True

    def _submit(self, url: str, password: str | None, tries: int) -> None:
        self._pool.submit(_check, url, password, name="test lab database connection",
                          on_result=lambda text: self._done(True, text),
                          on_error=lambda err: self._failed(err, url, tries))

    def _failed(self, err: TaskError, url: str, tries: int) -> None:
        from engine.core.errors import AllSightError
        from engine.store.errors import StoreLoginError

        if isinstance(err.exc, StoreLoginError) and tries < MAX_PASSWORD_TRIES:
            password = self._ask(self._parent, urls.display_url(url), _prompt_reason(_user(url), tries))
            if password is not None:
                self._submit(url, password, tries + 1)
                return
        if isinstance(err.exc, AllSightError):
            self._done(False, str(err.exc))
        else:  # a bug, not a refusal: the details go to the log
            log.error("the connection test failed unexpectedly:\n%s", err.details)
            self._done(False, f"The test failed unexpectedly: {type(err.exc).__name__}: {err.exc}")

    def _done(self, ok: bool, text: str) -> None:
        self._running = False
        self.finished.emit(ok, text)

    def shutdown(self) -> bool:
        """Wait for a running test (its result is dropped); True when none is left running."""
        self._running = False
        return self._pool.shutdown(TEST_WAIT_MS)


__all__ = ["LOCAL_LABEL", "MAX_PASSWORD_TRIES", "ConnectionTest", "WindowStore", "ask_password", "lab_label",
           "open_lab_store", "open_window_store"]
