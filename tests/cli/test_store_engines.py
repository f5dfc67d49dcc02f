"""The command line on a lab's PostgreSQL database: ``classify --db URL`` writes there (and
makes no ``postgresql:`` folder), ``store migrate`` copies a workstation's history in, verified,
and ``audit verify`` checks it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.store.errors import StoreError
from engine.store.results import ResultStore
from tests.conftest import synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)


def _folder(tmp_path: Path, name: str = "P-1", n: int = 3) -> Path:
    for i in range(n):
        write_image(tmp_path / name / f"f{i}.png", synthetic_smear(i, 96, i))
    return tmp_path / name


def test_classify_writes_its_results_into_the_lab_database(tmp_path, pg_url, tiny_model):
    folder = _folder(tmp_path)
    proc = run("classify", folder, "--model", tiny_model, "--db", pg_url, "--out", tmp_path / "r.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "postgresql:").exists() and not (tmp_path / "postgresql+psycopg:").exists()
    with ResultStore.open(pg_url) as lab:
        assert [s.sample_id for s in lab.list_samples()] == ["P-1"]
        assert len(lab.predictions("P-1")) == 3 and lab.verify_audit().ok
    assert run("audit", "verify", pg_url).returncode == 0


def test_store_migrate_copies_a_workstation_into_the_lab_database_once(tmp_path, pg_url, tiny_model):
    desk = tmp_path / "desk.sqlite3"
    assert run("classify", _folder(tmp_path), "--model", tiny_model, "--db", desk).returncode == 0
    proc = run("store", "migrate", desk, pg_url)
    assert proc.returncode == 0, proc.stderr
    assert "3 predictions" in proc.stdout and "audit trail intact" in proc.stdout
    again = run("store", "migrate", desk, pg_url)
    assert again.returncode == 2 and "already holds a history" in again.stderr
    assert len([line for line in again.stderr.splitlines() if line.strip()]) == 1


def test_an_unreachable_lab_database_is_one_line(tmp_path):
    proc = run("classify", _folder(tmp_path), "--db", "postgresql://allsight@127.0.0.1:9/allsight",
               "--out", tmp_path / "r.csv")
    assert proc.returncode == 2 and "cannot be reached" in proc.stderr and "Traceback" not in proc.stderr


def test_the_command_line_grants_and_prints_what_it_ran(lab_accounts, tmp_path):
    owner_url, app_url, app = lab_accounts
    ResultStore.open(owner_url).close()
    dry = run("store", "grant", owner_url, app, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"GRANT SELECT, INSERT ON audit_log TO {app};" in dry.stdout
    with pytest.raises(StoreError, match="may not use the ALLSight tables"):
        ResultStore.open(app_url)  # a dry run grants nothing
    done = run("store", "grant", owner_url, app)
    assert done.returncode == 0, done.stderr
    assert f"{app} may now use" in done.stdout and "owner-pw" not in done.stdout + done.stderr
    with ResultStore.open(app_url) as store:
        store.register_sample("S-1", str(tmp_path), operator="ana")
    refused = run("store", "grant", owner_url, "nobody_here")
    assert refused.returncode == 2 and "no database account 'nobody_here'" in refused.stderr
