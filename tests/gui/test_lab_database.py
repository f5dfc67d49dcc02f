"""The lab database in the GUI settings: the URL is saved, its password never; the window opens
on the lab's PostgreSQL server (asking for a password when the server wants one) or, when it
cannot, on this workstation's own file, saying so once; "Test connection" runs off the GUI thread.

Against a real PostgreSQL server (tests/pg_fixtures.py). Its loopback connections are trusted, so
:func:`password_lab` adds a ``pg_hba.conf`` line that makes the server check one role's password
(SCRAM), removed again afterwards: the password prompts below meet a real refusal.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from PySide6.QtWidgets import QInputDialog, QLineEdit

from engine.store.results import default_db_path
from gui import lab_database_url
from gui.lab_database import LOCAL_LABEL, MAX_PASSWORD_TRIES
from gui.settings import Settings, load_settings, save_settings, settings_path

SECRET = "s3cret-Pw_91"


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def no_password_from_outside(monkeypatch, tmp_path):
    """No password reaches libpq from the person running the tests ($PGPASSWORD, ~/.pgpass):
    each test says where its password comes from."""
    for name in ("ALLSIGHT_DB_PASSWORD", "PGPASSWORD", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such.pgpass"))


@dataclass(frozen=True)
class Lab:
    url: str  # postgresql://role@127.0.0.1:port/db, no password
    user: str
    password: str
    port: int
    dbname: str


def _refuses_without_password(port: int, user: str, dbname: str) -> bool:
    import psycopg

    try:
        psycopg.connect(host="127.0.0.1", port=port, user=user, dbname=dbname, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        return "no password supplied" in str(err)
    return False


@pytest.fixture
def password_lab(pg_server):
    """A role whose password the server checks, owning an empty database of its own."""
    user = f"pw_{uuid.uuid4().hex[:8]}"
    password = f"p@ss:w/rd {uuid.uuid4().hex[:6]}"  # characters a URL must escape
    dbname = f"lab_{uuid.uuid4().hex[:8]}"
    pg_server.create_role(user, password)
    pg_server.create_database(dbname, owner=user)
    hba = pg_server.data_dir / "pg_hba.conf"
    line = f"host all {user} 127.0.0.1/32 scram-sha-256\n"
    hba.write_text(line + hba.read_text())  # first match wins: this role alone needs its password
    pg_server.psql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while not _refuses_without_password(pg_server.port, user, dbname):
        assert time.monotonic() < deadline, "the server did not start checking the password"
        time.sleep(0.05)
    try:
        yield Lab(f"postgresql://{user}@127.0.0.1:{pg_server.port}/{dbname}", user, password, pg_server.port, dbname)
    finally:
        hba.write_text(hba.read_text().replace(line, "", 1))
        pg_server.psql("SELECT pg_reload_conf()")
        pg_server.drop_database(dbname)
        pg_server.psql(f'DROP ROLE IF EXISTS "{user}"')


@pytest.fixture
def lab_url(pg_url) -> str:
    """An empty lab database the trusted superuser opens, as the setting spells it."""
    return pg_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(autouse=True)
def prompts(monkeypatch):
    """QInputDialog.getText answers from ``prompts.answers`` (a password, or None: Cancel) and
    records each question; a question nobody expected fails the test (instead of blocking it)."""

    class Prompts(list):
        answers: list[str | None] = []

    asked = Prompts()

    def get_text(parent, title, label, echo=QLineEdit.EchoMode.Normal, text="", *args, **kwargs):
        asked.append({"title": title, "label": label, "echo": echo})
        assert asked.answers, f"unexpected question {title!r}: {label}"
        answer = asked.answers.pop(0)
        return ("", False) if answer is None else (answer, True)

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(get_text))
    return asked


@pytest.fixture
def open_window(qtbot):
    windows = []

    def make(settings: Settings):
        from gui.main_window import MainWindow

        win = MainWindow(settings)
        windows.append(win)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        qtbot.waitUntil(lambda: win.history_loaded, timeout=15000)
        qtbot.wait(50)  # a notice queued for when the window shows has had its turn
        return win

    yield make
    for win in windows:
        win.shutdown()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def everything_logged(caplog, tmp_path) -> str:
    files = [p.read_text(errors="replace") for p in (tmp_path / "logs").rglob("*") if p.is_file()]
    return caplog.text + "\n".join(files)


# ---------------------------------------------------------------------------------- settings
def test_the_lab_database_is_blank_by_default_and_a_plain_url_round_trips():
    assert Settings().lab_database == ""
    url = "postgresql://allsight_app@labdb.example.org:5432/allsight?sslmode=require"
    save_settings(Settings(lab_database=url, lab_name="Haematology"))
    assert load_settings().lab_database == url
    data = json.loads(settings_path().read_text(encoding="utf-8"))
    del data["lab_database"]  # a file from before the setting: this workstation's own history
    settings_path().write_text(json.dumps(data), encoding="utf-8")
    assert load_settings() == Settings(lab_name="Haematology")


@pytest.mark.parametrize("written", [
    f"postgresql://alice:{SECRET}@labdb:5432/allsight",
    f"postgresql://alice@labdb:5432/allsight?password={SECRET}",
])
def test_a_settings_file_holding_a_password_loads_without_it_and_the_log_never_shows_it(written, caplog):
    caplog.set_level(logging.DEBUG)
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(json.dumps({"schema_version": 3, "lab_database": written}), encoding="utf-8")
    loaded = load_settings()
    assert loaded.lab_database == "postgresql://alice@labdb:5432/allsight"
    assert "held a password; it was taken out" in caplog.text
    assert SECRET not in caplog.text
    save_settings(loaded)
    assert SECRET not in settings_path().read_text(encoding="utf-8")


def test_saving_settings_never_writes_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    save_settings(Settings(lab_database=f"postgresql://alice:{SECRET}@labdb:5432/allsight"))
    text = settings_path().read_text(encoding="utf-8")
    assert SECRET not in text
    assert json.loads(text)["lab_database"] == "postgresql://alice@labdb:5432/allsight"
    assert "held a password" in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize("written", ["sqlite:///home/me/results.db", "labdb:5432", 5,
                                     f"postgresql://alice:{SECRET}@labdb:port/allsight", "postgresql://alice@labdb"])
def test_a_lab_database_that_is_not_a_postgresql_url_reads_as_this_workstations_own(written, caplog):
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(json.dumps({"schema_version": 3, "lab_database": written, "lab_name": "L"}),
                               encoding="utf-8")
    loaded = load_settings()
    assert loaded == Settings(lab_name="L")
    assert "invalid value for 'lab_database'" in caplog.text
    assert SECRET not in caplog.text  # not even in a URL too broken to parse


# ------------------------------------------------------------------------ opening the window
def test_without_a_lab_database_the_window_opens_this_workstations_own_file(open_window, dialogs):
    win = open_window(Settings())
    assert win.store.dialect == "sqlite" and win.store.path == default_db_path()
    assert win.store_label == LOCAL_LABEL
    assert win.database_label.text() == "Local database" and LOCAL_LABEL in win.database_label.toolTip()
    assert dialogs == []


def test_a_lab_url_opens_the_window_on_the_lab_postgresql_database(open_window, lab_url, dialogs, prompts):
    win = open_window(Settings(lab_database=lab_url))
    assert win.store.dialect == "postgresql"
    assert win.store.path == lab_url  # the URL without a password, as the store names it
    assert win.store_label == f"Lab database {lab_url}"
    assert win.database_label.text() == "Lab database" and lab_url in win.database_label.toolTip()
    assert not default_db_path().exists()  # no local history made on the side
    assert win.store_error is None
    assert dialogs == [] and prompts == []  # the trusted superuser: no password asked


def test_a_password_the_server_asks_for_is_asked_once_used_and_never_saved_or_logged(
        open_window, password_lab, prompts, dialogs, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    prompts.answers = [password_lab.password]
    win = open_window(Settings(lab_database=password_lab.url))
    assert len(prompts) == 1
    assert prompts[0]["echo"] == QLineEdit.EchoMode.Password  # typed hidden
    assert password_lab.user in prompts[0]["label"] and "never saved" in prompts[0]["label"]
    assert win.store.dialect == "postgresql" and win.store_label == f"Lab database {password_lab.url}"
    assert dialogs == []
    win.update_settings(lab_name="Haematology")  # the window saves its settings
    saved = settings_path().read_text(encoding="utf-8")
    assert json.loads(saved)["lab_database"] == password_lab.url
    assert password_lab.password not in saved
    assert password_lab.password not in str(win.store.path)
    assert password_lab.password not in everything_logged(caplog, tmp_path)


@pytest.mark.parametrize("source", ["pgpass", "environment"])
def test_a_password_from_pgpass_or_the_environment_needs_no_question(source, open_window, password_lab, prompts,
                                                                     dialogs, monkeypatch, tmp_path):
    if source == "pgpass":
        pgpass = tmp_path / "lab.pgpass"
        escaped = password_lab.password.replace("\\", "\\\\").replace(":", "\\:")
        pgpass.write_text(f"127.0.0.1:{password_lab.port}:{password_lab.dbname}:{password_lab.user}:{escaped}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
    else:
        monkeypatch.setenv("ALLSIGHT_DB_PASSWORD", password_lab.password)
    win = open_window(Settings(lab_database=password_lab.url))
    assert win.store.dialect == "postgresql"
    assert prompts == [] and dialogs == []


def _one_notice(qtbot, dialogs) -> str:
    qtbot.waitUntil(lambda: len(dialogs) >= 1, timeout=5000)
    qtbot.wait(100)
    assert len(dialogs) == 1, dialogs  # one message, not one per attempt
    return dialogs[0]["text"]


def test_a_refused_password_falls_back_to_the_local_file_with_one_message(open_window, password_lab, prompts,
                                                                          dialogs, qtbot, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    prompts.answers = [f"wrong-{i}" for i in range(MAX_PASSWORD_TRIES)]
    win = open_window(Settings(lab_database=password_lab.url))
    assert len(prompts) == MAX_PASSWORD_TRIES and prompts.answers == []
    assert "refused" in prompts[1]["label"]
    assert win.store.dialect == "sqlite" and win.store.path == default_db_path()
    assert win.store_label == LOCAL_LABEL and win.database_label.text() == "Local database"
    text = _one_notice(qtbot, dialogs)
    assert "refused the user name or password" in text and "this workstation" in text
    assert "wrong-0" not in everything_logged(caplog, tmp_path) and "wrong-0" not in text
    assert win.error_button.isVisible()  # and the status bar's error indicator keeps it


def test_cancelling_the_password_question_falls_back_to_the_local_file(open_window, password_lab, prompts,
                                                                       dialogs, qtbot):
    prompts.answers = [None]
    win = open_window(Settings(lab_database=password_lab.url))
    assert len(prompts) == 1
    assert win.store.dialect == "sqlite" and win.store_error is None
    text = _one_notice(qtbot, dialogs)
    assert "no password was given" in text and password_lab.url in text


def test_an_unreachable_lab_server_falls_back_to_the_local_file_without_asking(open_window, prompts, dialogs, qtbot):
    url = f"postgresql://allsight@127.0.0.1:{closed_port()}/allsight"
    win = open_window(Settings(lab_database=url))
    assert prompts == []  # not a password problem: no question
    assert win.store.dialect == "sqlite" and win.store.path == default_db_path()
    text = _one_notice(qtbot, dialogs)
    assert "cannot be reached" in text and url in text


def test_when_neither_database_opens_the_window_says_why_for_both(open_window, prompts, dialogs, qtbot,
                                                                  monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("ALLSIGHT_DATA_DIR", str(blocker))
    win = open_window(Settings(lab_database=f"postgresql://allsight@127.0.0.1:{closed_port()}/allsight"))
    assert win.store is None
    assert "cannot be reached" in win.store_error and "cannot be opened either" in win.store_error
    assert win.database_label.text() == "No result history"


# ------------------------------------------------------------------------ the settings dialog
@pytest.fixture
def dialog(qtbot):
    from gui.settings_dialog import SettingsDialog

    d = SettingsDialog(Settings())
    qtbot.addWidget(d)
    d.show()
    yield d
    d.connection_test.shutdown()


@pytest.fixture
def checks(monkeypatch):
    """Which thread each connection test ran on (the real check, called through)."""
    real = lab_database_url.check_connection
    threads: list[threading.Thread] = []

    def spy(url, password=None):
        threads.append(threading.current_thread())
        return real(url, password)

    monkeypatch.setattr(lab_database_url, "check_connection", spy)
    return threads


def test_the_dialog_takes_a_typed_password_out_of_the_url_and_says_so_before_saving(dialog):
    dialog.lab_db_edit.setText(f"postgresql://alice:{SECRET}@labdb:5432/allsight")
    dialog._accept()
    assert dialog.result() == 0  # not saved yet: the person is told first
    assert dialog.lab_db_edit.text() == "postgresql://alice@labdb:5432/allsight"
    assert "never saves it" in dialog.lab_db_result.text() and dialog.lab_db_result.isVisible()
    dialog._accept()
    assert dialog.result() == 1
    assert dialog.settings().lab_database == "postgresql://alice@labdb:5432/allsight"


def test_the_dialog_refuses_a_lab_database_that_is_not_a_postgresql_url(dialog):
    dialog.lab_db_edit.setText("sqlite:///shared/results.db")
    dialog._accept()
    assert dialog.result() == 0
    assert "PostgreSQL" in dialog.error_label.text() and dialog.error_label.isVisible()
    dialog.lab_db_edit.setText("")  # blank: this workstation's own history
    dialog._accept()
    assert dialog.result() == 1 and dialog.settings().lab_database == ""


def test_test_connection_runs_off_the_gui_thread_reports_the_server_and_changes_nothing(
        dialog, qtbot, lab_url, pg_server, checks):
    from engine.store.schema import SCHEMA_VERSION

    dialog.lab_db_edit.setText(lab_url)
    assert dialog.test_connection()
    assert not dialog.test_button.isEnabled()  # one test at a time
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=20000)
    text = dialog.lab_db_result.text()
    assert text.startswith("✓ Connected to") and "PostgreSQL 1" in text and "empty" in text, text
    assert checks and all(t is not threading.main_thread() for t in checks)
    dbname = lab_url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                          dbname) == "0"  # testing created no tables
    from engine.store.results import ResultStore

    ResultStore.open(lab_url).close()  # now an ALLSight database
    assert dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=20000)
    assert f"schema {SCHEMA_VERSION}, the one this version uses" in dialog.lab_db_result.text()


def test_test_connection_reports_an_unreachable_server(dialog, qtbot, checks):
    dialog.lab_db_edit.setText(f"postgresql://allsight@127.0.0.1:{closed_port()}/allsight")
    assert dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=20000)
    assert dialog.lab_db_result.text().startswith("✗ ") and "cannot be reached" in dialog.lab_db_result.text()
    assert checks and checks[0] is not threading.main_thread()


def test_test_connection_asks_for_the_password_the_server_wants(dialog, qtbot, password_lab, prompts, checks):
    prompts.answers = ["wrong", password_lab.password]
    dialog.lab_db_edit.setText(password_lab.url)
    assert dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=20000)
    assert dialog.lab_db_result.text().startswith("✓ Connected to"), dialog.lab_db_result.text()
    assert len(prompts) == 2 and "refused" in prompts[1]["label"]
    assert len(checks) == 3  # none, wrong, right
    assert password_lab.password not in dialog.lab_db_result.text()
    assert dialog.settings().lab_database == password_lab.url


def test_cancelling_the_password_of_a_test_reports_the_refusal(dialog, qtbot, password_lab, prompts):
    prompts.answers = [None]
    dialog.lab_db_edit.setText(password_lab.url)
    assert dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=20000)
    assert dialog.lab_db_result.text().startswith("✗ ") and "refused" in dialog.lab_db_result.text()


def test_closing_the_dialog_during_a_test_waits_for_it_and_drops_its_result(dialog, qtbot, monkeypatch):
    started, finished = threading.Event(), threading.Event()

    def slow(url, password=None):
        started.set()
        time.sleep(0.5)
        finished.set()
        return "Connected (too late to be shown)"

    monkeypatch.setattr(lab_database_url, "check_connection", slow)
    dialog.lab_db_edit.setText("postgresql://allsight@127.0.0.1:5432/allsight")
    assert dialog.test_connection()
    assert started.wait(5)
    dialog.reject()
    assert finished.is_set()  # reject() returned only once the worker was done
    qtbot.wait(100)
    assert "too late" not in dialog.lab_db_result.text()


def test_settings_made_in_code_with_another_kind_of_url_open_the_local_file_not_that_one(open_window, dialogs,
                                                                                          qtbot, tmp_path):
    other = tmp_path / "elsewhere.sqlite3"
    win = open_window(Settings(lab_database=f"sqlite:///{other}"))
    assert win.store.path == default_db_path() and not other.exists()
    assert "PostgreSQL" in _one_notice(qtbot, dialogs)


# ---------------------------------------------------------------------------------- saving it
def test_a_lab_database_set_in_the_settings_is_saved_audited_and_used_from_the_next_start(
        open_window, lab_url, dialogs, prompts):
    from gui.settings_flow import apply_settings

    win = open_window(Settings())
    assert win.store.dialect == "sqlite"
    assert apply_settings(win, win.settings.replace(lab_database=lab_url))
    assert load_settings().lab_database == lab_url
    assert "used from the next start" in win.statusBar().currentMessage()
    assert win.store.dialect == "sqlite"  # this window keeps the database it opened
    changed = win.store.audit(action="lab_database_changed")
    assert [e.details["lab_database"] for e in changed] == [lab_url]
    again = open_window(load_settings())
    assert again.store.dialect == "postgresql" and again.store.path == lab_url


def test_a_technician_may_not_point_the_workstation_at_another_database(open_window, lab_url, dialogs,
                                                                        monkeypatch):
    from engine.core.identity import Role
    from engine.store.results import ResultStore
    from gui.settings_flow import apply_settings
    from tests.gui.test_identity import PASSWORDS, sign_in

    with ResultStore.open(default_db_path()) as store:
        store.accounts.create("ada", PASSWORDS["ada"], Role.ADMINISTRATOR, actor="it")
        store.accounts.create("tom", PASSWORDS["tom"], Role.TECHNICIAN, actor="it")
        store.accounts.set_policy(accounts_required=True, actor="it")
    win = open_window(Settings())
    sign_in(win, monkeypatch, "tom")
    assert not apply_settings(win, win.settings.replace(lab_database=lab_url))
    assert "change the lab database" in dialogs[-1]["text"]
    assert load_settings().lab_database == ""
    assert win.store.audit(action="lab_database_changed") == []
