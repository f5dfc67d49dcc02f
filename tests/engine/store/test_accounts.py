"""Named accounts, roles and the lab policy: the store itself refuses what a role may not do."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from engine.core.identity import AuthenticationError, Identity, PermissionDenied, Role, os_identity
from engine.core.records import ImageResult
from engine.store.errors import StoreError
from engine.store.results import ResultStore

PASSWORDS = {"ada": "admin-pass-1", "tom": "tech-pass-22", "rita": "review-pass-3"}
SHA = "a" * 64


def lab_store(target, *, required: bool = True) -> ResultStore:
    """A store with an administrator (ada), a technician (tom) and a reviewer (rita); ``target``:
    a folder (an SQLite file in it) or a database (``store_target``)."""
    store = ResultStore.open(target / "lab.sqlite3" if isinstance(target, Path) else target)
    store.accounts.create("ada", PASSWORDS["ada"], Role.ADMINISTRATOR, "Ada Admin", actor="it")
    store.accounts.create("tom", PASSWORDS["tom"], Role.TECHNICIAN, "Tom Tech", actor="it")
    store.accounts.create("rita", PASSWORDS["rita"], Role.REVIEWER, "Rita Reviewer", actor="it")
    if required:
        store.accounts.set_policy(accounts_required=True, actor="it")
    return store


def classified_sample(store: ResultStore, tmp_path, name: str = "S-1") -> str:
    """A sample with one flagged image, classified and recorded by whoever is signed in."""
    image = tmp_path / f"{name}.jpg"
    image.write_bytes(b"not really a jpeg")
    sample, _ = store.register_sample(name, tmp_path)
    store.add_images(sample.sample_id, [image])
    store.record_prediction(sample.sample_id, image, ImageResult(str(image), "ok", "Pre", 0.6, needs_review=True),
                            "m", "1", SHA)
    return str(image)


def test_without_required_accounts_the_named_actor_is_recorded_as_before(tmp_path, store_target):
    with ResultStore.open(store_target) as store:
        assert not store.accounts_required and store.user is None
        path = classified_sample(store, tmp_path)
        store.record_review("S-1", path, "Pre", os_identity().user)
        assert store.audit(action="record_review")[0].actor == os_identity().user


def test_accounts_cannot_be_required_before_an_administrator_exists(tmp_path, store_target):
    with ResultStore.open(store_target) as store:
        store.accounts.create("tom", PASSWORDS["tom"], Role.TECHNICIAN, actor="it")
        with pytest.raises(StoreError, match="administrator"):
            store.accounts.set_policy(accounts_required=True, actor="it")
        assert not store.accounts_required


def test_once_required_nothing_changes_without_a_sign_in(tmp_path, store_target):
    with lab_store(store_target) as store:
        with pytest.raises(PermissionDenied, match="signed-in ALLSight account"):
            store.register_sample("S-1", tmp_path)
        with pytest.raises(PermissionDenied):
            store.accounts.create("eve", "whatever-1", Role.ADMINISTRATOR)
        assert store.list_samples() == [] and [a.username for a in store.accounts.list()] == ["ada", "rita", "tom"]


def test_a_refused_sign_in_says_nothing_about_which_part_was_wrong_and_is_audited(tmp_path, store_target):
    with lab_store(store_target) as store:
        for user, password in (("tom", "wrong-password"), ("nobody", PASSWORDS["tom"])):
            with pytest.raises(AuthenticationError) as err:
                store.sign_in(user, password)
            assert str(err.value) == "user name or password not accepted"
        refused = store.audit(action="sign_in_refused")
        assert [e.details["username"] for e in refused] == ["tom", "nobody"]
        assert all("wrong-password" not in str(e.details) for e in refused)
        assert store.user is None


def test_a_technician_classifies_and_reviews_under_their_own_name_but_may_not_sign_off(tmp_path, store_target):
    with lab_store(store_target) as store:
        who = store.sign_in("TOM", PASSWORDS["tom"])  # user names ignore case
        assert who.user == "tom" and who.role is Role.TECHNICIAN and who.name == "Tom Tech"
        path = classified_sample(store, tmp_path)
        store.record_review("S-1", path, "Early", "")
        with pytest.raises(PermissionDenied, match="under the name 'rita'"):
            store.record_review("S-1", path, "Pre", "rita")  # no typed name decides who acted
        with pytest.raises(PermissionDenied, match=r"Tom Tech \(technician\) may not sign samples off"):
            store.sign_off("S-1", "", "I approve", password=PASSWORDS["tom"])
        with pytest.raises(PermissionDenied):
            store.reopen("S-1", "", "because")
        with pytest.raises(PermissionDenied):
            store.record_event("model_changed", model="resnet18")
        store.record_event("export", "S-1", kind="pdf", path="/tmp/r.pdf")
        actors = {(e.action, e.actor) for e in store.audit("S-1")}
        assert {("create_sample", "tom"), ("record_prediction", "tom"), ("record_review", "tom"),
                ("export", "tom")} <= actors
        assert not store.get_sample("S-1").signed_off


def test_a_reviewer_signs_off_only_with_the_password_again(tmp_path, store_target):
    with lab_store(store_target) as store:
        store.sign_in("tom", PASSWORDS["tom"])
        path = classified_sample(store, tmp_path)
        store.sign_in("rita", PASSWORDS["rita"])
        store.record_review("S-1", path, "Pre", "")
        for password in (None, "", PASSWORDS["tom"]):
            with pytest.raises(AuthenticationError, match="not signed off"):
                store.sign_off("S-1", "", "I approve", password=password)
        assert not store.get_sample("S-1").signed_off
        signed = store.sign_off("S-1", "", "I approve", password=PASSWORDS["rita"])
        assert signed.signed_off_by == "rita"
        store.reopen("S-1", "", "a second look")
        assert not store.get_sample("S-1").signed_off


def test_the_independent_reviewer_rule_of_the_lab_policy_binds_every_front_end(tmp_path, store_target):
    with lab_store(store_target) as store:
        store.sign_in("ada", PASSWORDS["ada"])
        store.accounts.set_policy(independent_reviewer_required=True)
        store.sign_in("rita", PASSWORDS["rita"])
        path = classified_sample(store, tmp_path)  # rita classified it herself
        store.record_review("S-1", path, "Pre", "")
        with pytest.raises(StoreError, match="other than the person who classified"):
            store.sign_off("S-1", "", "I approve", password=PASSWORDS["rita"], require_independent_reviewer=False)
        policy_entry = store.audit(action="policy_changed")[-1]
        assert policy_entry.actor == "ada" and policy_entry.details == {"independent_reviewer_required": True}


def test_a_deactivated_or_demoted_account_loses_its_rights_at_once(tmp_path, store_target):
    with lab_store(store_target) as admin, ResultStore.open(store_target) as desk:
        admin.sign_in("ada", PASSWORDS["ada"])
        desk.sign_in("rita", PASSWORDS["rita"])  # signed in on another workstation
        desk.register_sample("S-1", tmp_path)
        admin.accounts.update("rita", role=Role.TECHNICIAN)
        with pytest.raises(PermissionDenied, match="technician"):
            desk.reopen("S-1", "", "x")
        admin.accounts.update("rita", active=False)
        with pytest.raises(PermissionDenied, match="no longer active"):
            desk.register_sample("S-2", tmp_path / "b")
        with pytest.raises(AuthenticationError):
            desk.sign_in("rita", PASSWORDS["rita"])


def test_the_last_administrator_cannot_be_removed_while_accounts_are_required(tmp_path, store_target):
    with lab_store(store_target) as store:
        store.sign_in("ada", PASSWORDS["ada"])
        for change in ({"role": Role.REVIEWER}, {"active": False}):
            with pytest.raises(StoreError, match="last active administrator"):
                store.accounts.update("ada", **change)
        store.accounts.update("rita", role=Role.ADMINISTRATOR)
        store.accounts.update("ada", active=False)  # now there is another


def test_an_identity_built_by_hand_is_not_a_sign_in(tmp_path, store_target):
    with lab_store(store_target) as store:
        store._gate.signed_in(Identity("ada", Role.ADMINISTRATOR, "os"))  # what a careless front end might do
        with pytest.raises(PermissionDenied, match="signed-in"):
            store.register_sample("S-1", tmp_path)


def test_passwords_are_kept_only_as_argon2id_hashes_and_checked_for_length(tmp_path):
    with lab_store(tmp_path) as store:
        store.sign_in("ada", PASSWORDS["ada"])
        with pytest.raises(StoreError, match="at least 8"):
            store.accounts.create("short", "1234567", Role.TECHNICIAN)
        with pytest.raises(StoreError, match="already an account"):
            store.accounts.create("Tom", "another-pass", Role.TECHNICIAN)
        with pytest.raises(StoreError, match="space or a control character"):
            store.accounts.create("a b", "another-pass", Role.TECHNICIAN)
        store.accounts.set_password("tom", "new-tech-pass")
    with closing(sqlite3.connect(tmp_path / "lab.sqlite3")) as conn:
        hashes = [r[0] for r in conn.execute("SELECT password_hash FROM accounts")]
        with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
            conn.execute("DELETE FROM accounts WHERE username = 'tom'")
    assert all(h.startswith("$argon2id$") for h in hashes)
    data = b"".join(p.read_bytes() for p in tmp_path.glob("lab.sqlite3*"))
    assert not any(pw.encode() in data for pw in (*PASSWORDS.values(), "new-tech-pass"))
    with ResultStore.open(tmp_path / "lab.sqlite3") as store:
        assert store.sign_in("tom", "new-tech-pass").user == "tom"
        store.accounts.set_password("tom", "own-choice-9", old_password="new-tech-pass")  # one's own, no admin
        with pytest.raises(AuthenticationError):
            store.accounts.set_password("tom", "own-choice-10", old_password="wrong")
        with pytest.raises(PermissionDenied):
            store.accounts.set_password("rita", "taken-over-1")


def test_accounts_and_policy_edited_outside_allsight_are_refused_and_reported(tmp_path):
    """A hostile user with write access to the SQLite file turns the policy off, promotes an
    account and swaps a password hash: the audit trail (hash-chained) is the reference."""
    with lab_store(tmp_path):
        pass
    intruder_hash = ResultStore.open(tmp_path / "other.sqlite3")
    intruder_hash.accounts.create("x", "intruder-pw", Role.TECHNICIAN, actor="it")
    with closing(sqlite3.connect(tmp_path / "other.sqlite3")) as conn:
        known_hash = conn.execute("SELECT password_hash FROM accounts").fetchone()[0]
    intruder_hash.close()
    with closing(sqlite3.connect(tmp_path / "lab.sqlite3")) as conn:
        conn.execute("UPDATE lab_policy SET value = '0' WHERE key = 'accounts_required'")
        conn.execute("UPDATE accounts SET role = 'administrator' WHERE username = 'tom'")
        conn.execute("UPDATE accounts SET password_hash = ? WHERE username = 'rita'", (known_hash,))
        conn.commit()
    with ResultStore.open(tmp_path / "lab.sqlite3") as store:
        assert store.accounts_required  # the stricter of table and audit trail
        with pytest.raises(PermissionDenied, match="signed-in"):
            store.register_sample("S-1", tmp_path)
        with pytest.raises(AuthenticationError):
            store.sign_in("rita", "intruder-pw")  # the swapped hash is not accepted
        with pytest.raises(AuthenticationError):
            store.sign_in("tom", PASSWORDS["tom"])  # the promoted row is refused, right password or not
        problems = store.integrity_problems()
        assert len(problems) == 3 and "accounts_required" in problems[0]
        assert any("tom" in p and "role says administrator" in p for p in problems)
        assert any("rita" in p and "password hash" in p for p in problems)
        store.sign_in("ada", PASSWORDS["ada"])  # an administrator repairs it
        store.accounts.update("tom", role=Role.TECHNICIAN)
        store.accounts.set_password("rita", "a-new-pass-1")
        store.accounts.set_policy(accounts_required=True)
        assert store.integrity_problems() == []
        assert store.sign_in("rita", "a-new-pass-1").role is Role.REVIEWER
