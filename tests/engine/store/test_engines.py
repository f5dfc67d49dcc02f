"""One store, two engines: the lab's PostgreSQL database keeps the rules of a workstation's SQLite
file (same schema, append-only audit log, one chain), under concurrency, and says clearly why it
cannot be opened. Every test here runs against a real PostgreSQL server (tests/pg_server.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine.core.records import ImageResult
from engine.store.copy import copy_store
from engine.store.engines import open_database
from engine.store.errors import SignOffError, StoreError
from engine.store.results import ResultStore
from tests.engine.store.conftest import raw

SHA = "a" * 64


CORE_TABLES = ("samples", "images", "predictions", "reviews", "audit_log", "audit_head", "accounts", "lab_policy")


def _columns(store: ResultStore, tables: tuple[str, ...] = CORE_TABLES) -> dict[str, set[tuple[str, bool]]]:
    """Each table's columns with whether they may be NULL, as the engine itself reports them."""
    out = {}
    with raw(store) as conn:
        for table in tables:
            if store.dialect == "sqlite":
                rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
                out[table] = {(r["name"], not r["notnull"] and not r["pk"]) for r in rows}
            else:
                rows = conn.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                                    "WHERE table_name = ?", (table,)).fetchall()
                out[table] = {(r[0], r[1] == "YES") for r in rows}
    return out


def _classified(store: ResultStore, folder: Path, name: str = "S", n: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{name}-{i}.jpg"
        path.write_bytes(f"{name} {i}".encode())
        paths.append(path)
    store.create_or_get_sample(name, folder)
    store.add_images(name, paths)
    for p in paths:
        store.record_prediction(name, p, ImageResult(str(p), "ok", "Pre", 0.99), "m", "1", SHA)
    return paths


def test_both_engines_have_the_same_tables_and_columns(tmp_path, pg_url):
    with ResultStore.open(tmp_path / "w.sqlite3") as sqlite, ResultStore.open(pg_url) as lab:
        assert _columns(lab) == _columns(sqlite)


def test_the_audit_log_cannot_be_changed_or_emptied_through_the_database(pg_url, tmp_path):
    with ResultStore.open(pg_url) as store:
        _classified(store, tmp_path / "imgs")
        for sql in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log", "TRUNCATE audit_log",
                    "DELETE FROM audit_head", "UPDATE audit_head SET n_entries = 0"):
            with pytest.raises(StoreError, match="audit"), raw(store, write=True) as conn:
                conn.execute(sql)
        assert store.verify_audit().ok


def test_two_workstations_write_at_once_without_losing_or_doubling_a_result(pg_url, tmp_path):
    stations = [ResultStore.open(pg_url) for _ in range(2)]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            _classified(stations[k], tmp_path / f"desk{k}", name=f"S{k}", n=25)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,), name=f"desk{k}") for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors
        with raw(stations[0]) as conn:
            counted = conn.execute("SELECT COUNT(*), COUNT(DISTINCT image_pk) FROM predictions").fetchone()
        assert tuple(counted) == (50, 50)
        check = stations[1].verify_audit()
        assert check.ok and check.n_entries == 2 * (1 + 1 + 25)  # per desk: sample, images, 25 results
    finally:
        for s in stations:
            s.close()


def test_two_reviewers_signing_off_one_sample_at_once_exactly_one_succeeds(pg_url, tmp_path):
    with ResultStore.open(pg_url) as setup:
        _classified(setup, tmp_path / "imgs")
    stations = [ResultStore.open(pg_url) for _ in range(2)]
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def sign(k: int) -> None:
        barrier.wait()
        try:
            stations[k].sign_off("S", f"reviewer{k}", "I approve this report.")
            outcomes.append("signed")
        except SignOffError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=sign, args=(k,), name=f"reviewer{k}") for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(map(str, outcomes)).count("signed") == 1, outcomes
        assert [a.action for a in stations[0].audit("S")].count("sign_off") == 1
        assert stations[0].verify_audit().ok
    finally:
        for s in stations:
            s.close()


def test_a_workstations_history_moves_into_the_lab_database_verified(tmp_path, pg_url):
    with ResultStore.open(tmp_path / "desk.sqlite3") as desk, ResultStore.open(pg_url) as lab:
        _classified(desk, tmp_path / "imgs", n=3)
        desk.record_review("S", tmp_path / "imgs" / "S-0.jpg", "Early", "dr_b")
        report = copy_store(desk, lab)
        assert report.counts["predictions"] == 3 and report.counts["reviews"] == 1
        assert report.last_hash == desk.verify_audit().last_hash
        assert [p.final_class for p in lab.predictions("S")] == ["Early", None, None]
        # the lab database goes on from there
        _classified(lab, tmp_path / "more", name="T", n=1)
        assert lab.verify_audit().ok
        with pytest.raises(StoreError, match="already holds a history"):
            copy_store(desk, lab)


def test_a_database_of_a_newer_schema_is_refused_by_name(pg_url):
    ResultStore.open(pg_url).close()
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer ALLSight"):
        ResultStore.open(pg_url)


def test_another_applications_database_is_refused_unchanged(pg_url):
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match="not an ALLSight result database"):
        ResultStore.open(pg_url)


def test_an_unreachable_server_and_a_missing_database_get_one_clear_message(pg_server):
    with pytest.raises(StoreError, match="cannot be reached") as unreachable:
        open_database("postgresql://allsight@127.0.0.1:9/allsight")  # nothing listens on port 9
    assert "Traceback" not in str(unreachable.value)
    with pytest.raises(StoreError, match="no such database"):
        open_database(pg_server.url("no_such_database"))


def test_the_password_never_appears_in_messages(pg_server):
    url = pg_server.url("no_such_database").replace("allsight_admin@", "allsight_admin:s3cret-pw@")
    with pytest.raises(StoreError) as refused:
        open_database(url)
    assert "s3cret-pw" not in str(refused.value) and "***" in str(refused.value)
    # libpq also takes the password as a URL option: left out of the name shown.
    with pytest.raises(StoreError, match="no such database") as refused:
        open_database(pg_server.url("no_such_database") + "?password=s3cret-q")
    assert "s3cret-q" not in str(refused.value) and "password=" not in str(refused.value)


def test_leases_do_not_enter_the_audit_trail(pg_url, tmp_path):
    with ResultStore.open(pg_url) as store:
        store.create_or_get_sample("S", tmp_path)
        before = store.verify_audit().n_entries
        store.leases.release(store.leases.acquire("S", "tom"))
        assert store.verify_audit().n_entries == before
