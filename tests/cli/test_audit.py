"""``python main.py audit verify DB`` and ``audit export DB --out FILE``, run as a subprocess."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from engine.store.audit import TRIGGERS
from engine.store.results import ResultStore
from tests.conftest import fake_image_files
from tests.engine.store.test_results import record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "ALLSIGHT_DATA_DIR": str(tmp_path / "appdata"), "ALLSIGHT_LOG_DIR": str(tmp_path / "logs")}


def audit(env: dict[str, str], *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "main.py", "audit", *map(str, args)], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture
def db(tmp_path) -> Path:
    folder = tmp_path / "S-001"
    paths = fake_image_files(folder, 3, text="image")
    path = tmp_path / "allsight.sqlite3"
    with ResultStore.open(path) as store:
        store.create_or_get_sample("S-001", folder, operator="=ana")
        store.add_images("S-001", paths)
        for p in paths:
            record(store, "S-001", p)
        store.sign_off("S-001", "dr. b", "I have reviewed sample S-001 and approve this report.")
        store.create_or_get_sample("S-002", tmp_path, operator="bo")
    return path


def n_entries(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])


def test_verify_an_intact_trail(db, env):
    proc = audit(env, "verify", db)
    assert proc.returncode == 0, proc.stderr
    assert f"audit trail intact: {n_entries(db)} entries" in proc.stdout


def test_verify_a_tampered_trail_exits_3_with_the_reason(db, env):
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("UPDATE audit_log SET actor = 'someone else' WHERE action = 'sign_off'")
        pk = conn.execute("SELECT pk FROM audit_log WHERE action = 'sign_off'").fetchone()[0]
    proc = audit(env, "verify", db)
    assert proc.returncode == 3
    assert f"entry {pk} was changed after it was written" in proc.stderr


def test_verify_an_unusable_database_exits_2(tmp_path, env):
    missing = audit(env, "verify", tmp_path / "none.sqlite3")
    assert missing.returncode == 2 and "no such result database" in missing.stderr
    assert not (tmp_path / "none.sqlite3").exists()
    jpeg = tmp_path / "photo.sqlite3"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0 not a database")
    proc = audit(env, "verify", jpeg)
    assert proc.returncode == 2 and "not an ALLSight result database" in proc.stderr


def test_export_csv_and_json_with_filters(db, env, tmp_path):
    out = tmp_path / "out" / "audit.csv"
    proc = audit(env, "export", db, "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == n_entries(db) - 1  # every entry, then the export itself was recorded
    with ResultStore.open(db) as store:
        last = store.audit()[-1]
    assert last.action == "export" and last.details["kind"] == "audit" and last.details["entries"] == len(rows)
    first = rows[0]
    assert first["action"] == "create_sample" and first["user"] == "'=ana"  # no spreadsheet formula
    assert rows[-2]["action"] == "sign_off" and "I have reviewed sample S-001" in rows[-2]["description"]
    assert {r["image_file"] for r in rows if r["action"] == "record_prediction"} == {"img00.jpg", "img01.jpg", "img02.jpg"}

    js = tmp_path / "audit.json"
    proc = audit(env, "export", db, "--out", js, "--sample", "S-001", "--action", "record_prediction")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(js.read_text(encoding="utf-8"))
    assert doc["schema"] == "allsight.audit-export/1" and doc["check"]["ok"] is True
    assert [e["action"] for e in doc["entries"]] == ["record_prediction"] * 3
    assert doc["filters"] == {"sample_id": "S-001", "action": "record_prediction"}
    assert doc["entries"][0]["entry_hash"] and doc["entries"][0]["details"]["status"] == "ok"

    proc = audit(env, "export", db, "--out", js, "--user", "bo")
    assert [e["sample_id"] for e in json.loads(js.read_text())["entries"]] == ["S-002"]
    proc = audit(env, "export", db, "--out", js, "--since", "2000-01-01", "--until", "2000-12-31")
    assert proc.returncode == 0 and json.loads(js.read_text())["entries"] == []


def test_export_refuses_the_database_itself_and_bad_arguments(db, env, tmp_path):
    before = db.read_bytes()
    csv_named_db = tmp_path / "results.csv"
    csv_named_db.write_bytes(before)
    proc = audit(env, "export", csv_named_db, "--out", csv_named_db)
    assert proc.returncode == 2 and "would overwrite the result database" in proc.stderr
    assert csv_named_db.read_bytes() == before
    proc = audit(env, "export", db, "--out", tmp_path / "audit.txt")
    assert proc.returncode == 2 and ".csv or .json" in proc.stderr
    proc = audit(env, "export", db, "--out", tmp_path / "a.csv", "--since", "yesterday")
    assert proc.returncode == 2 and "not a date" in proc.stderr
    proc = audit(env, "export", db, "--out", tmp_path / "a.csv", "--sample", "NOPE")
    assert proc.returncode == 2 and "no sample 'NOPE'" in proc.stderr
    assert not (tmp_path / "a.csv").exists()
