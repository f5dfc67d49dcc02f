"""Least privilege, tested with real roles on a real server: the workstations' account can do all
the store does, and cannot rewrite history or change the schema — with the triggers dropped too.
Roles log in with their passwords (tests/pg_server.py): a wrong one is refused in one line."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from engine.core.records import ImageResult, ImageStatus
from engine.store.errors import StoreError
from engine.store.grants import APPEND_ONLY, PRIVILEGES
from engine.store.results import ResultStore

SHA = "a" * 64


def granted(lab_accounts) -> str:
    owner_url, app_url, app = lab_accounts
    with ResultStore.open(owner_url) as owner:  # the owner creates the schema, then grants
        owner.grant_app_role(app)
    return app_url


def as_app(url: str, sql: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_every_table_of_the_schema_has_its_grant(pg_url):
    with ResultStore.open(pg_url) as store:
        with store._db.read() as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()}
        assert tables == set(PRIVILEGES), "a table without a grant (or a grant without a table): grants.py"
        statements = store.grant_app_role("allsight_app", dry_run=True)
    for table in APPEND_ONLY:
        assert f"GRANT SELECT, INSERT ON {table} TO allsight_app" in statements
    assert not any("DELETE" in s and "sample_leases" not in s for s in statements if s.startswith("GRANT"))


def test_the_app_account_does_everything_the_store_does(lab_accounts, tmp_path):
    app_url = granted(lab_accounts)
    with ResultStore.open(app_url) as store:
        sample, created = store.register_sample("S-1", str(tmp_path), patient_id="P-1", operator="ana")
        assert created
        path = str(tmp_path / "a.png")
        (tmp_path / "a.png").write_bytes(b"not really an image, but a file with content")
        assert store.record_prediction("S-1", path, ImageResult(path, ImageStatus.OK, "Pre", 0.9), "m", "1", SHA)
        store.record_review("S-1", path, "Pre", "rita")
        store.sign_off("S-1", "rita", "Reviewed.")
        store.reopen("S-1", "rita", "a second look")
        store.update_sample("S-1", new_sample_id="S-1b", actor="rita")
        lease = store.leases.acquire("S-1b", "ana")
        store.leases.release(lease)
        assert store.verify_audit().ok
        with store.watch_changes(poll_s=0.2) as watcher:  # LISTEN needs no grant
            assert watcher.listening and watcher.problem is None


@pytest.mark.parametrize("sql", [
    "UPDATE audit_log SET actor = 'mallory'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "UPDATE predictions SET predicted_class = 'Benign'",
    "DELETE FROM reviews",
    "DELETE FROM samples",
    "UPDATE alembic_version SET version_num = '9999'",
    "CREATE TABLE mine (x int)",
    "DROP TABLE samples",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
])
def test_the_app_account_cannot_rewrite_history_or_the_schema(lab_accounts, tmp_path, sql):
    owner_url, _app_url, _app = lab_accounts
    app_url = granted(lab_accounts)
    with ResultStore.open(app_url) as store:
        store.register_sample("S-1", str(tmp_path), operator="ana")
    # Take the triggers away (as a careless owner might): the grants alone must still refuse.
    as_app(owner_url, "ALTER TABLE audit_log DISABLE TRIGGER USER")
    with pytest.raises(DBAPIError, match="permission denied|must be owner"):
        as_app(app_url, sql)


def test_an_unknown_account_or_a_non_owner_changes_nothing(lab_accounts):
    owner_url, app_url, app = lab_accounts
    with ResultStore.open(owner_url) as owner, pytest.raises(StoreError, match="no database account 'nobody_here'"):
        owner.grant_app_role("nobody_here")
    with ResultStore.open(owner_url) as owner, pytest.raises(StoreError, match="not a plain role name"):
        owner.grant_app_role("app; DROP TABLE samples", dry_run=True)
    # The app account has no privileges yet: one message saying so, and how to grant them.
    with pytest.raises(StoreError, match=f"the account '{app}' may not use the ALLSight tables.*store grant"):
        ResultStore.open(app_url)



def test_a_wrong_password_is_one_clear_line_without_the_password(lab_accounts):
    owner_url, _app_url, _app = lab_accounts
    wrong = owner_url.replace(":owner-pw@", ":not-the-pw@")
    with pytest.raises(StoreError) as refused:
        ResultStore.open(wrong)
    message = str(refused.value)
    assert "refused the user name or password" in message
    assert "not-the-pw" not in message and "owner-pw" not in message and "\n" not in message
