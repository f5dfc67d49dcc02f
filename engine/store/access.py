"""Who may change the result database, checked by the store itself before every change.

:class:`Gate` is the one place the rule is applied (the rule itself, which role may do what, is
:data:`engine.core.identity.ROLE_PERMISSIONS`):

* **Accounts not required** (the default, a single workstation): the front end says who acts
  (the OS login, :func:`engine.core.identity.os_identity`) and the store records that name.
* **Accounts required** (the lab's policy, in the database): a change is taken only from the
  person signed in on this store (:meth:`engine.store.results.ResultStore.sign_in`), whose
  account is still active and whose role, read again from the database at each change, allows
  it. The name recorded is the account's; a different name passed by a caller is refused, never
  recorded. An :class:`~engine.core.identity.Identity` built by hand carries no token this store
  issued, so it cannot stand in for a sign-in.
"""

from __future__ import annotations

from engine.core.identity import AuthenticationError, Identity, Permission, PermissionDenied, Role
from engine.store import accounts as _accounts
from engine.store.accounts import Account, LabPolicy, access_state, policy
from engine.store.database import Database


class Gate:
    """The signed-in person of one open store, and the check every change goes through."""

    def __init__(self, db: Database):
        self._db = db
        self._user: Identity | None = None

    @property
    def user(self) -> Identity | None:
        return self._user

    def signed_in(self, identity: Identity) -> None:
        self._user = identity

    def signed_out(self) -> None:
        self._user = None

    def actor(self, permission: Permission, actor: str, what: str) -> str:
        """The name to record for ``what`` (an action needing ``permission``), or
        :class:`PermissionDenied`. ``actor`` is the caller's name for the person ("" = the
        signed-in one)."""
        user = self._user
        signed_in = user is not None and user.via == "password" and bool(user.token)
        effective, role = access_state(self._db, user.user if user is not None and signed_in else None)
        if not effective.accounts_required:
            return actor or (user.user if user is not None else "")
        if user is None or not signed_in:
            raise PermissionDenied(f"this lab's result database ({self._db.name}) takes changes only from "
                                   f"a signed-in ALLSight account: sign in to {what}")
        if role is None:
            raise PermissionDenied(f"the account {user.user} is no longer active (or its record was changed "
                                   f"outside ALLSight): it may not {what}")
        Identity(user.user, role, user.via, user.display_name).require(permission, what)
        if actor and actor.strip() != user.user:
            raise PermissionDenied(f"signed in as {user.user}: cannot record {what} under the name {actor!r}")
        return user.user


class Accounts:
    """The accounts and the lab policy of one store (``ResultStore.accounts``): every change
    needs :attr:`~engine.core.identity.Permission.MANAGE_ACCOUNTS` and is audited under the
    person making it."""

    def __init__(self, db: Database, gate: Gate):
        self._db = db
        self._gate = gate

    def _admin(self, actor: str, what: str) -> str:
        return self._gate.actor(Permission.MANAGE_ACCOUNTS, actor, what) or "?"

    def list(self) -> list[Account]:
        return _accounts.list_accounts(self._db)

    def get(self, username: str) -> Account | None:
        return _accounts.get_account(self._db, username)

    def create(self, username: str, password: str, role: Role, display_name: str = "", *, actor: str = "") -> Account:
        return _accounts.create_account(self._db, self._admin(actor, "create accounts"), username, password, role,
                                        display_name)

    def update(self, username: str, *, role: Role | None = None, display_name: str | None = None,
               active: bool | None = None, actor: str = "") -> Account:
        return _accounts.update_account(self._db, self._admin(actor, "change accounts"), username, role=role,
                                        display_name=display_name, active=active)

    def set_password(self, username: str, password: str, *, actor: str = "", old_password: str | None = None) -> None:
        """Set ``username``'s password: an administrator's act, or the person's own with their
        current password (``old_password``)."""
        user = self._gate.user
        if old_password is not None and user is not None and user.user == username:
            if not _accounts.check_password(self._db, username, old_password):
                raise AuthenticationError(_accounts.REFUSED)
            who = user.user
        else:
            who = self._admin(actor, "set other people's passwords")
        _accounts.set_password(self._db, who, username, password)

    @property
    def policy(self) -> LabPolicy:
        return policy(self._db)

    def set_policy(self, *, actor: str = "", **changes: bool) -> LabPolicy:
        """Change the lab policy (``accounts_required``, ``independent_reviewer_required``).
        Requiring accounts needs an active administrator account first."""
        return _accounts.set_policy(self._db, self._admin(actor, "change the lab policy"), **changes)


__all__ = ["Accounts", "Gate"]
