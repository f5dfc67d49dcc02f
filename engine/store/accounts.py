"""Named ALLSight accounts and the lab's policy, kept in the result database (schema 5).

Passwords are hashed with Argon2id (argon2-cffi's :class:`~argon2.PasswordHasher`, its default
parameters, re-hashed on sign-in when those change); the database never holds a password. The
policy (:class:`LabPolicy`) lives in the database, not in a workstation's settings file, so a
person cannot lift it by editing their own settings: once accounts are required, the store takes
changes only from a signed-in account (:mod:`engine.store.access`).

Every change here is in the audit log, attributed to the administrator who made it; sign-ins
and refused sign-ins are too (the refused ones with the user name typed, never the password).
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.core.identity import AuthenticationError, Identity, Role
from engine.core.textsafe import printable
from engine.store.database import Database
from engine.store.errors import StoreError
from engine.store.rows import audit, now

#: Shortest password accepted (NIST SP 800-63B: at least 8 characters, no composition rules).
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MAX_USERNAME_CHARS = 64
#: The one message of a refused sign-in: it never says whether the name or the password was wrong.
REFUSED = "user name or password not accepted"

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Account:
    """One account as an administrator sees it (never its password hash)."""

    username: str
    display_name: str
    role: Role
    active: bool
    created_at: str
    changed_at: str


@dataclass(frozen=True)
class LabPolicy:
    """The lab's rules for this database."""

    #: Changes only from a signed-in ALLSight account (roles enforced); off: the OS login acts.
    accounts_required: bool = False
    #: A sample is signed off only by someone other than the person who classified it.
    independent_reviewer_required: bool = False


_POLICY_KEYS = {"accounts_required", "independent_reviewer_required"}


def read_policy(conn: sqlite3.Connection) -> LabPolicy:
    values = dict(conn.execute("SELECT key, value FROM lab_policy").fetchall())
    return LabPolicy(**{k: values.get(k) == "1" for k in _POLICY_KEYS})


def policy(db: Database) -> LabPolicy:
    with db.read() as conn:
        return read_policy(conn)


def _active_administrators(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM accounts WHERE active = 1 AND role = ?",
                            (Role.ADMINISTRATOR.value,)).fetchone()[0])


def set_policy(db: Database, actor: str, **changes: bool) -> LabPolicy:
    unknown = set(changes) - _POLICY_KEYS
    if unknown:
        raise StoreError(f"unknown lab policy setting(s): {', '.join(sorted(unknown))}")
    with db.write() as conn:
        old = read_policy(conn)
        if changes.get("accounts_required") and not old.accounts_required and not _active_administrators(conn):
            raise StoreError("accounts cannot be required before an active administrator account exists "
                             "(create one first, or nobody could manage the accounts afterwards)")
        for key, value in changes.items():
            conn.execute("INSERT INTO lab_policy (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, "1" if value else "0"))
        new = read_policy(conn)
        if new != old:
            audit(conn, actor, "policy_changed", None,
                  **{k: getattr(new, k) for k in sorted(_POLICY_KEYS) if getattr(new, k) != getattr(old, k)})
    return new


def _username(value: str) -> str:
    name = (value or "").strip()
    if not name:
        raise StoreError("a user name must not be empty")
    if len(name) > MAX_USERNAME_CHARS:
        raise StoreError(f"a user name has at most {MAX_USERNAME_CHARS} characters")
    if printable(name) != name or any(c.isspace() for c in name):
        raise StoreError(f"the user name {printable(name)!r} has a space or a control character in it")
    return name


def _password(value: str) -> str:
    if not isinstance(value, str) or len(value) < MIN_PASSWORD_CHARS:
        raise StoreError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(value) > MAX_PASSWORD_CHARS:
        raise StoreError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return value


def _row(conn: sqlite3.Connection, username: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM accounts WHERE username = ?", (username,)).fetchone()


def _account(row: sqlite3.Row) -> Account:
    return Account(row["username"], row["display_name"], Role(row["role"]), bool(row["active"]),
                   row["created_at"], row["changed_at"])


def list_accounts(db: Database) -> list[Account]:
    with db.read() as conn:
        return [_account(r) for r in conn.execute("SELECT * FROM accounts ORDER BY username COLLATE NOCASE")]


def get_account(db: Database, username: str) -> Account | None:
    with db.read() as conn:
        row = _row(conn, (username or "").strip())
    return None if row is None else _account(row)


def create_account(db: Database, actor: str, username: str, password: str, role: Role,
                   display_name: str = "") -> Account:
    name, role = _username(username), Role(role)
    digest = _hasher.hash(_password(password))  # outside the lock: hashing takes a moment on purpose
    with db.write() as conn:
        if _row(conn, name) is not None:
            raise StoreError(f"there is already an account {name!r}")
        stamp = now()
        conn.execute("INSERT INTO accounts (username, display_name, role, password_hash, active, created_at, "
                     "changed_at) VALUES (?,?,?,?,1,?,?)", (name, display_name.strip(), role.value, digest, stamp, stamp))
        audit(conn, actor, "account_created", None, username=name, role=role.value, display_name=display_name.strip())
        return _account(_row(conn, name))  # type: ignore[arg-type]


def update_account(db: Database, actor: str, username: str, *, role: Role | None = None,
                   display_name: str | None = None, active: bool | None = None) -> Account:
    with db.write() as conn:
        row = _row(conn, (username or "").strip())
        if row is None:
            raise StoreError(f"there is no account {username!r}")
        changes: dict[str, Any] = {}
        if role is not None and Role(role).value != row["role"]:
            changes["role"] = Role(role).value
        if display_name is not None and display_name.strip() != row["display_name"]:
            changes["display_name"] = display_name.strip()
        if active is not None and int(active) != row["active"]:
            changes["active"] = int(active)
        if not changes:
            return _account(row)
        was_admin = row["role"] == Role.ADMINISTRATOR.value and row["active"]
        stays_admin = changes.get("role", row["role"]) == Role.ADMINISTRATOR.value and changes.get("active", 1)
        if was_admin and not stays_admin and read_policy(conn).accounts_required \
                and _active_administrators(conn) <= 1:
            raise StoreError(f"{row['username']} is the last active administrator: make another account "
                             "administrator first, or nobody could manage the accounts")
        sets = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(f"UPDATE accounts SET {sets}, changed_at = ? WHERE pk = ?",  # noqa: S608 (fixed column names)
                     (*changes.values(), now(), row["pk"]))
        audit(conn, actor, "account_changed", None, username=row["username"], **changes)
        return _account(_row(conn, row["username"]))  # type: ignore[arg-type]


def set_password(db: Database, actor: str, username: str, password: str) -> None:
    digest = _hasher.hash(_password(password))
    with db.write() as conn:
        row = _row(conn, (username or "").strip())
        if row is None:
            raise StoreError(f"there is no account {username!r}")
        conn.execute("UPDATE accounts SET password_hash = ?, changed_at = ? WHERE pk = ?", (digest, now(), row["pk"]))
        audit(conn, actor, "password_changed", None, username=row["username"])


def _verified(row: sqlite3.Row | None, password: str) -> bool:
    if row is None or not row["active"]:
        _hasher.hash("x" * MIN_PASSWORD_CHARS)  # the same time as a real check: no user-name oracle
        return False
    try:
        return bool(_hasher.verify(row["password_hash"], password))
    except (VerificationError, InvalidHashError):
        return False


def authenticate(db: Database, username: str, password: str) -> Identity:
    """The signed-in :class:`Identity` of ``username``, or :class:`AuthenticationError`
    (:data:`REFUSED`, whatever was wrong). Both outcomes are audited."""
    name = (username or "").strip()
    with db.read() as conn:
        row = _row(conn, name)
    ok = _verified(row, password or "")
    if not ok or row is None:
        with db.write() as conn:  # committed before the refusal is raised
            audit(conn, name or "?", "sign_in_refused", None, username=printable(name)[:MAX_USERNAME_CHARS])
        raise AuthenticationError(REFUSED)
    with db.write() as conn:
        if _hasher.check_needs_rehash(row["password_hash"]):
            conn.execute("UPDATE accounts SET password_hash = ? WHERE pk = ?", (_hasher.hash(password), row["pk"]))
        audit(conn, row["username"], "signed_in", None)
    return Identity(row["username"], Role(row["role"]), "password", row["display_name"], secrets.token_hex(16))


def check_password(db: Database, username: str, password: str) -> bool:
    """Whether ``password`` is ``username``'s (an active account): the re-entry at sign-off."""
    with db.read() as conn:
        row = _row(conn, (username or "").strip())
    return _verified(row, password or "")


def current_role(db: Database, username: str) -> Role | None:
    """The role of the active account ``username`` now (``None``: no such active account)."""
    with db.read() as conn:
        row = conn.execute("SELECT role FROM accounts WHERE username = ? AND active = 1", (username,)).fetchone()
    return None if row is None else Role(row[0])


__all__ = ["MIN_PASSWORD_CHARS", "REFUSED", "Account", "LabPolicy", "authenticate", "check_password",
           "create_account", "current_role", "get_account", "list_accounts", "policy", "read_policy",
           "set_password", "set_policy", "update_account"]
