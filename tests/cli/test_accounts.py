"""``main.py accounts DB ...`` and signing in from the command line, run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.identity import os_login
from engine.store.results import ResultStore
from tests.conftest import synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALLSIGHT_")}
    return {**clean, "ALLSIGHT_DATA_DIR": str(tmp_path / "appdata"), "ALLSIGHT_LOG_DIR": str(tmp_path / "logs"),
            "QT_QPA_PLATFORM": "offscreen"}


def main(env: dict[str, str], *args, password: str | None = None, new_password: str | None = None,
         ) -> subprocess.CompletedProcess:
    env = dict(env)
    if password is not None:
        env["ALLSIGHT_PASSWORD"] = password
    if new_password is not None:
        env["ALLSIGHT_NEW_PASSWORD"] = new_password
    proc = subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture
def lab_db(tmp_path, env) -> Path:
    """A database with an administrator (ada) and a technician (tom), accounts required."""
    db = tmp_path / "lab.sqlite3"
    ResultStore.open(db).close()
    assert main(env, "accounts", db, "add", "ada", "--role", "administrator", "--name", "Ada",
                new_password="ada-password").returncode == 0
    assert main(env, "accounts", db, "add", "tom", "--role", "technician", new_password="tom-password").returncode == 0
    proc = main(env, "accounts", db, "policy", "--require-accounts", "on")
    assert proc.returncode == 0 and "accounts required: yes" in proc.stdout, proc.stderr
    return db


def smear_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "S-1"
    for i in range(2):
        write_image(folder / f"cell{i}.jpg", synthetic_smear(i, 40, i), quality=92)
    return folder


def test_without_accounts_the_os_login_is_recorded_not_the_operator_name(tmp_path, env, tiny_model):
    db = tmp_path / "db.sqlite3"
    proc = main(env, "classify", smear_folder(tmp_path), "--model", tiny_model, "--db", db, "--operator", "K. Jones",
                "--out", tmp_path / "r.csv")
    assert proc.returncode == 0, proc.stderr
    with ResultStore.open(db) as store:
        assert store.get_sample("S-1").operator == "K. Jones"  # who prepared it: a description
        assert {e.actor for e in store.audit("S-1")} == {os_login()}  # who acted


def test_with_accounts_required_classify_signs_in_and_records_the_account(tmp_path, env, tiny_model, lab_db):
    folder, out = smear_folder(tmp_path), tmp_path / "r.csv"
    args = ("classify", folder, "--model", tiny_model, "--db", lab_db, "--out", out, "--account", "tom")
    proc = main(env, *args)
    assert proc.returncode == 2 and "set ALLSIGHT_PASSWORD" in proc.stderr  # no terminal to ask on
    proc = main(env, *args, password="wrong-password")
    assert proc.returncode == 2 and "user name or password not accepted" in proc.stderr
    assert not out.exists()
    proc = main(env, *args, "--report", tmp_path / "r.pdf", password="tom-password")
    assert proc.returncode == 0, proc.stderr
    with ResultStore.open(lab_db) as store:
        entries = store.audit("S-1")
        assert {e.actor for e in entries} == {"tom"}
        assert "export" in {e.action for e in entries}
        assert [e.details["username"] for e in store.audit(action="sign_in_refused")] == ["tom"]


def test_a_technician_may_not_change_accounts_or_the_policy(tmp_path, env, lab_db):
    for args in (("policy", "--require-accounts", "off"), ("set", "tom", "--role", "administrator")):
        proc = main(env, "accounts", lab_db, *args, "--account", "tom", password="tom-password")
        assert proc.returncode == 2 and "may not" in proc.stderr, proc.stderr
    proc = main(env, "accounts", lab_db, "set", "tom", "--role", "reviewer", "--account", "ada", password="ada-password")
    assert proc.returncode == 0 and "tom: reviewer, active" in proc.stdout, proc.stderr
    proc = main(env, "accounts", lab_db, "list")
    assert "tom" in proc.stdout and "reviewer" in proc.stdout and "accounts required: yes" in proc.stdout


def test_an_audit_export_is_itself_audited(tmp_path, env, lab_db):
    out = tmp_path / "audit.csv"
    proc = main(env, "audit", "export", lab_db, "--out", out, "--account", "ada", password="ada-password")
    assert proc.returncode == 0, proc.stderr
    with ResultStore.open(lab_db) as store:
        last = store.audit()[-1]
    assert last.action == "export" and last.actor == "ada" and last.details["kind"] == "audit"


def test_audit_verify_reports_an_account_promoted_outside_allsight(tmp_path, env, lab_db):
    import sqlite3
    from contextlib import closing

    assert main(env, "audit", "verify", lab_db).returncode == 0
    with closing(sqlite3.connect(lab_db)) as conn:
        conn.execute("UPDATE accounts SET role = 'administrator' WHERE username = 'tom'")
        conn.commit()
    proc = main(env, "audit", "verify", lab_db)
    assert proc.returncode == 3 and "the account tom was changed outside ALLSight" in proc.stderr
