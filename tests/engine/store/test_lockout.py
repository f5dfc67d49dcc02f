"""Sign-in lockout: five refused sign-ins for a user name lock it for a while, read from the
audit trail; the right password does not get through during the lockout; a password set by an
administrator, or the lockout's end, lets the person in again."""

from __future__ import annotations

import pytest

from engine.core.identity import AuthenticationError
from engine.store import lockout
from tests.engine.store.test_accounts import PASSWORDS, lab_store


def refuse(store, user: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationError, match="not accepted"):
            store.sign_in(user, "wrong-password")


def test_five_refusals_lock_the_name_even_against_the_right_password(tmp_path, store_target):
    with lab_store(store_target) as store:
        refuse(store, "tom", lockout.MAX_REFUSED_SIGN_INS)
        with pytest.raises(AuthenticationError, match="too many refused sign-ins.*15 minutes"):
            store.sign_in("Tom", PASSWORDS["tom"])  # the name's case does not matter
        assert store.user is None
        assert [e.details["username"] for e in store.audit(action="sign_in_locked")] == ["Tom"]
        store.sign_in("rita", PASSWORDS["rita"])  # other names are not affected


def test_fewer_refusals_or_a_success_between_them_do_not_lock(tmp_path, store_target):
    with lab_store(store_target) as store:
        refuse(store, "tom", lockout.MAX_REFUSED_SIGN_INS - 1)
        store.sign_in("tom", PASSWORDS["tom"])
        store.sign_out()
        refuse(store, "tom", lockout.MAX_REFUSED_SIGN_INS - 1)
        assert store.sign_in("tom", PASSWORDS["tom"]).user == "tom"


def test_unknown_names_lock_like_real_ones(tmp_path, store_target):
    with lab_store(store_target) as store:
        refuse(store, "nobody", lockout.MAX_REFUSED_SIGN_INS)
        with pytest.raises(AuthenticationError, match="too many refused sign-ins"):
            store.sign_in("nobody", "anything-at-all")


def test_an_administrators_new_password_ends_the_lockout(tmp_path, store_target):
    with lab_store(store_target) as store:
        refuse(store, "tom", lockout.MAX_REFUSED_SIGN_INS)
        store.sign_in("ada", PASSWORDS["ada"])
        store.accounts.set_password("tom", "tech-pass-new", actor="ada")
        store.sign_out()
        assert store.sign_in("tom", "tech-pass-new").user == "tom"


def test_the_lockout_ends_after_its_time(tmp_path, monkeypatch, store_target):
    with lab_store(store_target) as store:
        refuse(store, "tom", lockout.MAX_REFUSED_SIGN_INS)
        monkeypatch.setattr(lockout, "LOCKOUT_MINUTES", 0.0)  # as if the 15 minutes had passed
        assert store.sign_in("tom", PASSWORDS["tom"]).user == "tom"
