"""Tampering with a result database's audit trail by raw SQL, then ``audit verify``: exit 3,
naming the entry; the database still opens and its data stays reachable."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from engine.store.audit import TRIGGERS, entry_hash
from engine.store.results import ResultStore
from tests.cli.test_audit import audit, db, env  # noqa: F401 (fixtures)


def sql(path, *statements):
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


DROP = [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS]


def test_raw_edits_are_refused_while_the_triggers_stand(db, env):  # noqa: F811
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        sql(db, "UPDATE audit_log SET details = '{}' WHERE pk = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        sql(db, "DELETE FROM audit_log")
    assert audit(env, "verify", db).returncode == 0


@pytest.mark.parametrize(("tamper", "expected"), [
    (["UPDATE audit_log SET ts = '2020-01-01T00:00:00+00:00' WHERE pk = 4"],
     "entry 4 was changed after it was written"),
    (["DELETE FROM audit_log WHERE pk = 3"], "entry 3 is missing (deleted)"),
    (["DELETE FROM audit_log WHERE pk IN (2, 3, 4)"], "entries 2–4 are missing (deleted)"),
    (["DELETE FROM audit_log WHERE pk = (SELECT MAX(pk) FROM audit_log)"], "the chain's last entry is missing"),
    (["UPDATE audit_head SET n_entries = n_entries + 5"], "entries but"),
    (["DROP TABLE audit_head"], "audit head"),
], ids=["edited", "deleted-middle", "deleted-span", "deleted-last", "head-count", "head-dropped"])
def test_tampering_is_named_by_verify(db, env, tamper, expected):  # noqa: F811
    sql(db, *DROP, *tamper)
    proc = audit(env, "verify", db)
    assert proc.returncode == 3, proc.stdout
    assert expected in proc.stderr
    with ResultStore.open(db) as store:  # still opens: a lab must reach its data
        assert store.get_sample("S-001").signed_off
        assert store.audit_problem is not None


def test_a_forged_sign_off_with_a_recomputed_hash_is_caught(db, env):  # noqa: F811
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for statement in DROP:
            conn.execute(statement)
        pk, ts, action, sample_pk, image_pk, details, prev = conn.execute(
            "SELECT pk, ts, action, sample_pk, image_pk, details, prev_hash FROM audit_log "
            "WHERE action = 'sign_off'").fetchone()
        digest = entry_hash(ts, "dr. forged", action, sample_pk, image_pk, details, prev)
        conn.execute("UPDATE audit_log SET actor = 'dr. forged', entry_hash = ? WHERE pk = ?", (digest, pk))
    proc = audit(env, "verify", db)
    assert proc.returncode == 3 and f"entry {pk} was changed after it was written" in proc.stderr
