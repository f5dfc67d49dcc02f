"""The hash-chained, append-only audit log (schema 4), its verification, and the sign-off statement."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from engine.core.records import sign_off_statement
from engine.store.audit import GENESIS_HASH, TRIGGERS, entry_hash
from engine.store.results import ResultStore, SignOffError
from engine.store.schema import SCHEMA_VERSION, migrate
from tests.conftest import fake_image_files
from tests.engine.store.test_results import record


@pytest.fixture
def images(tmp_path):
    return fake_image_files(tmp_path / "patient1", 4)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "allsight.sqlite3"


def fill(db, images, *, sign: bool = True) -> int:
    """A sample classified (one flagged image, reviewed) and signed off; returns the entry count."""
    with ResultStore.open(db) as store:
        store.create_or_get_sample("S", images[0].parent, operator="ana")
        store.add_images("S", images)
        for i, path in enumerate(images):
            record(store, "S", path, needs_review=i == 0)
        store.record_review("S", images[0], "Pro", "dr. b")
        if sign:
            store.sign_off("S", "dr. b", sign_off_statement("S", store.predictions("S")))
        return len(store.audit())


def raw(db):
    return closing(sqlite3.connect(db, isolation_level=None))


def drop_triggers(db):
    with raw(db) as conn:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")


def verify(db):
    with ResultStore.open(db) as store:
        return store.verify_audit()


# ---------------------------------------------------------------------------------- the chain
def test_normal_operations_make_an_intact_chain(db, images):
    n = fill(db, images)
    with ResultStore.open(db) as store:
        assert store.audit_problem is None
        entries = store.audit()
        check = store.verify_audit()
    assert check.ok and check.n_entries == n == len(entries) and check.full and check.reason == ""
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.entry_hash
    assert check.last_hash == entries[-1].entry_hash
    assert check.describe() == f"audit trail intact: {n} entries"
    with raw(db) as conn:
        assert conn.execute("SELECT n_entries, last_pk, last_hash FROM audit_head").fetchone() == (
            n, entries[-1].pk, entries[-1].entry_hash)
        ts, actor, action, sample_pk, image_pk, details, prev = conn.execute(
            "SELECT ts, actor, action, sample_pk, image_pk, details, prev_hash FROM audit_log WHERE pk = 2").fetchone()
    assert entry_hash(ts, actor, action, sample_pk, image_pk, details, prev) == entries[1].entry_hash


def test_an_empty_database_is_intact(db):
    with ResultStore.open(db) as store:
        assert store.audit_problem is None
        assert store.verify_audit().ok and store.verify_audit().n_entries == 0


def test_update_and_delete_are_refused_by_triggers(db, images):
    fill(db, images)
    with raw(db) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE pk = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE pk = 2")
        with pytest.raises(sqlite3.DatabaseError, match="audit head"):
            conn.execute("UPDATE audit_head SET n_entries = 3")
        with pytest.raises(sqlite3.DatabaseError, match="audit head"):
            conn.execute("DELETE FROM audit_head")
    assert verify(db).ok


def test_migrating_schema_3_chains_the_old_rows(db, images):
    with raw(db) as conn:
        migrate(conn, target=3)
        conn.execute("INSERT INTO samples (sample_id, folder, operator, created_at, updated_at, signed_off_by, "
                     "signed_off_at) VALUES ('OLD', '/x', 'op', 't0', 't0', 'dr', 't1')")
        for i, action in enumerate(("create_sample", "add_images", "sign_off")):
            conn.execute("INSERT INTO audit_log (ts, actor, action, sample_pk, details) VALUES (?, 'op', ?, 1, ?)",
                         (f"2025-01-0{i + 1}T00:00:00+00:00", action, json.dumps({"n": i})))
    with ResultStore.open(db) as store:
        assert store.audit_problem is None
        old = store.audit()
        assert [e.action for e in old] == ["create_sample", "add_images", "sign_off"]
        assert old[0].prev_hash == GENESIS_HASH and old[2].prev_hash == old[1].entry_hash
        assert store.get_sample("OLD").signed_off and store.get_sample("OLD").sign_off_statement is None
        store.create_or_get_sample("NEW", "/y", operator="op")
        assert store.audit()[-1].prev_hash == old[-1].entry_hash
        check = store.verify_audit()
    assert check.ok and check.n_entries == 4
    with raw(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# ---------------------------------------------------------------------------------- tampering
def test_an_edited_row_is_detected(db, images):
    fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE pk = 3")
    check = verify(db)
    assert not check.ok and check.first_bad_pk == 3
    assert check.reason == "entry 3 was changed after it was written"


def test_deleted_middle_rows_are_detected(db, images):
    fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE pk BETWEEN 4 AND 5")
    check = verify(db)
    assert not check.ok and check.first_bad_pk == 4
    assert check.reason == "entries 4–5 are missing (deleted)"
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE pk = 2")
    assert verify(db).reason == "entry 2 is missing (deleted)"


def test_a_deleted_first_row_is_detected(db, images):
    fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE pk = 1")
    check = verify(db)
    assert check.first_bad_pk == 1 and check.reason == "entry 1 is missing (deleted)"


def test_a_deleted_last_row_is_detected(db, images):
    n = fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE pk = ?", (n,))
    check = verify(db)
    assert not check.ok and check.first_bad_pk == n
    assert check.reason == f"the chain's last entry is missing (entry {n} deleted)"
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE pk >= ?", (n - 2,))
    assert verify(db).reason == f"the chain's last entries are missing (entries {n - 2}–{n} deleted)"


def _recompute(conn, pk, **changes):
    row = dict(zip(("ts", "actor", "action", "sample_pk", "image_pk", "details", "prev_hash"), conn.execute(
        "SELECT ts, actor, action, sample_pk, image_pk, details, prev_hash FROM audit_log WHERE pk = ?",
        (pk,)).fetchone(), strict=True))
    row.update(changes)
    digest = entry_hash(*row.values())
    conn.execute("UPDATE audit_log SET actor = ?, details = ?, entry_hash = ? WHERE pk = ?",
                 (row["actor"], row["details"], digest, pk))


def test_a_recomputed_but_inconsistent_row_is_detected(db, images):
    fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        _recompute(conn, 3, actor="mallory")  # its own hash fits, the next entry's link does not
    check = verify(db)
    assert not check.ok and check.first_bad_pk == 3
    assert check.reason.startswith("entry 3 was changed after it was written (its hash was recomputed")


def test_a_recomputed_last_row_is_caught_by_the_head(db, images):
    n = fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        _recompute(conn, n, details=json.dumps({"call": "No ALL pattern detected"}))
    check = verify(db)
    assert not check.ok and check.first_bad_pk == n
    assert check.reason.startswith(f"entry {n} was changed after it was written")


def test_dropped_triggers_alone_are_reported(db, images):
    fill(db, images)
    drop_triggers(db)
    check = verify(db)
    assert not check.ok and check.first_bad_pk is None and "trigger" in check.reason and "chain is intact" in check.reason


def test_a_row_inserted_without_a_hash_is_detected(db, images):
    fill(db, images)
    insert = "INSERT INTO audit_log (ts, actor, action, details) VALUES ('t', 'x', 'sign_off', '{}')"
    with raw(db) as conn, pytest.raises(sqlite3.IntegrityError):  # the head cannot take an entry without a hash
        conn.execute(insert)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute(insert)
        pk = conn.execute("SELECT MAX(pk) FROM audit_log").fetchone()[0]
    check = verify(db)
    assert check.first_bad_pk == pk and "no hash" in check.reason


def test_opening_checks_the_tail_warns_and_still_opens(db, images, caplog):
    n = fill(db, images)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE pk = ?", (n,))
    with caplog.at_level(logging.WARNING, logger="engine.store.results"), ResultStore.open(db) as store:
        problem = store.audit_problem
        assert problem is not None and not problem.ok and problem.first_bad_pk == n
        assert store.get_sample("S").signed_off  # the data is still reachable
    assert any("last entry is missing" in r.getMessage() for r in caplog.records)


def test_the_open_check_reads_only_the_tail(db, images, monkeypatch):
    from engine.store import results

    fill(db, images)
    monkeypatch.setattr(results, "OPEN_TAIL", 2)
    drop_triggers(db)
    with raw(db) as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE pk = 1")
        for name, sql in TRIGGERS.items():
            if name != "audit_log_head":
                conn.execute(sql)
        conn.execute(TRIGGERS["audit_log_head"])
    with ResultStore.open(db) as store:
        assert store.audit_problem is None  # an old entry: not looked at on opening
        check = store.verify_audit()
        assert not check.ok and check.first_bad_pk == 1 and store.audit_problem == check


# ---------------------------------------------------------------------------------- filters
def test_audit_filters(db, images):
    fill(db, images)
    with ResultStore.open(db) as store:
        everything = store.audit()
        assert {e.action for e in store.audit(action="record_review")} == {"record_review"}
        assert {e.actor for e in store.audit(actor="dr. b")} == {"dr. b"}
        assert len(store.audit("S")) == len(everything)
        now = datetime.now(UTC)
        assert store.audit(since=now + timedelta(minutes=1)) == []
        assert len(store.audit(since=now - timedelta(hours=1), until=now + timedelta(hours=1))) == len(everything)
        assert store.audit(until=now - timedelta(hours=1)) == []
        assert everything[2].file_name in {p.name for p in images} | {""}


# ---------------------------------------------------------------------------------- sign-off
def test_sign_off_records_the_statement(db, images):
    fill(db, images, sign=False)
    with ResultStore.open(db) as store:
        text = sign_off_statement("S", store.predictions("S"))
        assert text == ("I have reviewed the 1 flagged image of sample S (of 4 images), changed the class of "
                        "1 image and approve this report.")
        with pytest.raises(SignOffError, match="statement must not be empty"):
            store.sign_off("S", "dr. b", "  ")
        signed = store.sign_off("S", "dr. b", text)
        assert signed.sign_off_statement == text == store.get_sample("S").sign_off_statement
        entry = store.audit("S", action="sign_off")[-1]
        assert entry.details["statement"] == text
        store.reopen("S", "dr. b", "second look")
        assert store.get_sample("S").sign_off_statement is None
        assert store.verify_audit().ok


def test_the_statement_counts_what_was_reviewed():
    from engine.core.records import ReviewedImage

    ok = ReviewedImage("a.png", "ok", "Pre", 0.9, file_name="a.png")
    flagged = ReviewedImage("b.png", "ok", "Pre", 0.4, needs_review=True, file_name="b.png")
    assert sign_off_statement("S-001", [ok, ok]) == (
        "I have reviewed sample S-001 (2 images, none flagged) and approve this report.")
    assert sign_off_statement("S-001", [ok] + [flagged.with_review("Pre", "dr")] * 7) == (
        "I have reviewed the 7 flagged images of sample S-001 (of 8 images) and approve this report.")


def test_an_independent_reviewer_can_be_required(db, images):
    fill(db, images, sign=False)
    with ResultStore.open(db) as store:
        store.record_prediction("S", images[1], store.predictions("S")[1].as_result(), "tiny", "0.0.2", "c" * 64,
                                actor="Dr. B ")
        with pytest.raises(SignOffError, match="other than the person who classified"):
            store.sign_off("S", "dr. b", "I approve.", require_independent_reviewer=True)
        assert not store.get_sample("S").signed_off
        store.sign_off("S", "dr. b", "I approve.")  # the rule is off by default
        store.reopen("S", "ana", "check")
        store.sign_off("S", "dr. c", "I approve.", require_independent_reviewer=True)
        assert store.audit(action="sign_off")[-1].details["independent_reviewer_required"] is True
