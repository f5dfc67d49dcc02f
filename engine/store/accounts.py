"""Named ALLSight accounts and the lab's policy, kept in the result database (schema 5).

Passwords are hashed with Argon2id (argon2-cffi's :class:`~argon2.PasswordHasher`, its default
parameters, re-hashed on sign-in when those change); the database never holds a password. The
policy (:class:`LabPolicy`) lives in the database, not in a workstation's settings file, so a
person cannot lift it by editing their own settings: once accounts are required, the store takes
changes only from a signed-in account (:mod:`engine.store.access`).

Every change here is in the audit log, attributed to the administrator who made it; sign-ins
and refused sign-ins are too (the refused ones with the user name typed, never the password).

**The audit trail is the reference.** The ``accounts`` and ``lab_policy`` rows are what the store
reads quickly, but anyone with write access to the SQLite file could edit them (turn the policy
off, promote an account, swap a password hash) without going through ALLSight. So every account
change is audited with the account's role, active flag and a *seal* of its password hash (the
first 32 hex digits of its sha256: the Argon2 hash itself never leaves the table), and
:func:`audited_state` replays those entries, which the hash chain protects. The effective policy is
the stricter of the table and its audit trail; an account whose row differs from its audited
state is refused until an administrator sets it again; :func:`integrity_problems` lists both
(``audit verify`` reports them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.core.identity import AuthenticationError, Identity, Role
from engine.core.textsafe import printable
from engine.store.database import Conn, Database, Row
from engine.store.errors import StoreError
from engine.store.lockout import locked_until, lockout_message
from engine.store.rows import audit, now

#: Shortest password accepted (NIST SP 800-63B: at least 8 characters, no composition rules).
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MAX_USERNAME_CHARS = 64
#: The one message of a refused sign-in: it never says whether the name or the password was wrong.
REFUSED = "user name or password not accepted"

_hasher = PasswordHasher()
log = logging.getLogger(__name__)
_RANK = {Role.TECHNICIAN: 0, Role.REVIEWER: 1, Role.ADMINISTRATOR: 2}


def _seal(password_hash: str) -> str:
    """What the audit trail keeps of a password hash: enough to notice a swapped one."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:32]


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


def _table_policy(conn: Conn) -> LabPolicy:
    values: dict[str, str] = dict(conn.execute("SELECT key, value FROM lab_policy").fetchall())
    return LabPolicy(**{k: values.get(k) == "1" for k in _POLICY_KEYS})


@dataclass(frozen=True)
class AuditedAccount:
    role: Role
    active: bool
    seal: str


_REPLAYED = ("policy_changed", "account_created", "account_changed", "password_changed", "password_rehashed")


def audited_state(conn: Conn) -> tuple[LabPolicy, dict[str, AuditedAccount]]:
    """The policy and the accounts as their audit entries (in chain order) leave them."""
    policy_values = dict.fromkeys(_POLICY_KEYS, False)
    accounts: dict[str, AuditedAccount] = {}
    marks = ",".join("?" * len(_REPLAYED))
    for action, details in conn.execute(
            f"SELECT action, details FROM audit_log WHERE action IN ({marks}) ORDER BY pk", _REPLAYED):  # noqa: S608
        d = json.loads(details or "{}")
        name = str(d.get("username", "")).casefold()
        if action == "policy_changed":
            policy_values.update({k: bool(v) for k, v in d.items() if k in _POLICY_KEYS})
        elif action == "account_created":
            accounts[name] = AuditedAccount(Role(d["role"]), True, d.get("seal", ""))
        elif name in accounts:
            old = accounts[name]
            accounts[name] = AuditedAccount(Role(d.get("role", old.role)), bool(d.get("active", old.active)),
                                            d.get("seal", old.seal))
    return LabPolicy(**policy_values), accounts


def read_policy(conn: Conn) -> LabPolicy:
    """The effective policy: each rule on when the table *or* its audit trail says so."""
    return _stricter(_table_policy(conn), audited_state(conn)[0])


def _stricter(table: LabPolicy, audited: LabPolicy) -> LabPolicy:
    return LabPolicy(**{k: getattr(table, k) or getattr(audited, k) for k in _POLICY_KEYS})


def policy(db: Database) -> LabPolicy:
    with db.read() as conn:
        return read_policy(conn)


def _row_problem(row: Row, audited: AuditedAccount | None) -> str:
    """Why an account row differs from its audited state ("" when it does not)."""
    if audited is None:
        return "it has no audited creation"
    if _seal(row["password_hash"]) != audited.seal:
        return "its password hash is not the one last set through ALLSight"
    if _RANK[Role(row["role"])] > _RANK[audited.role]:
        return f"its role says {row['role']} but its audit trail says {audited.role.value}"
    if row["active"] and not audited.active:
        return "it is active but its audit trail says it was deactivated"
    return ""


def integrity_problems(db: Database) -> list[str]:
    """Account rows and policy values that differ from the audit trail (edited outside ALLSight)."""
    with db.read() as conn:
        table, (audited_policy, audited) = _table_policy(conn), audited_state(conn)
        rows = conn.execute("SELECT * FROM accounts ORDER BY lower(username)").fetchall()
    problems = [f"the lab policy {k} is off in the table but on in the audit trail (the stricter applies)"
                for k in sorted(_POLICY_KEYS) if getattr(audited_policy, k) and not getattr(table, k)]
    for row in rows:
        why = _row_problem(row, audited.get(row["username"].casefold()))
        if why:
            problems.append(f"the account {row['username']} was changed outside ALLSight ({why}); it is refused "
                            "until an administrator sets it again")
    return problems


def _active_administrators(conn: Conn) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM accounts WHERE active = 1 AND role = ?",
                            (Role.ADMINISTRATOR.value,)).fetchone()[0])


def set_policy(db: Database, actor: str, **changes: bool) -> LabPolicy:
    unknown = set(changes) - _POLICY_KEYS
    if unknown:
        raise StoreError(f"unknown lab policy setting(s): {', '.join(sorted(unknown))}")
    with db.write() as conn:
        old = _table_policy(conn)
        if changes.get("accounts_required") and not old.accounts_required and not _active_administrators(conn):
            raise StoreError("accounts cannot be required before an active administrator account exists "
                             "(create one first, or nobody could manage the accounts afterwards)")
        for key, value in changes.items():
            conn.execute("INSERT INTO lab_policy (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, "1" if value else "0"))
        new = _table_policy(conn)
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


def _row(conn: Conn, username: str) -> Row | None:
    # User names are case-insensitive (SQLite: the column's NOCASE; PostgreSQL: a lower() index).
    return conn.execute("SELECT * FROM accounts WHERE lower(username) = lower(?)", (username,)).fetchone()


def _account(row: Row) -> Account:
    return Account(row["username"], row["display_name"], Role(row["role"]), bool(row["active"]),
                   row["created_at"], row["changed_at"])


def list_accounts(db: Database) -> list[Account]:
    with db.read() as conn:
        return [_account(r) for r in conn.execute("SELECT * FROM accounts ORDER BY lower(username)")]


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
        audit(conn, actor, "account_created", None, username=name, role=role.value, display_name=display_name.strip(),
              seal=_seal(digest))
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
        after = conn.execute("SELECT * FROM accounts WHERE pk = ?", (row["pk"],)).fetchone()
        # The whole resulting state, so that an administrator's change also repairs a row edited
        # outside ALLSight (the audit trail is the reference: module docstring).
        state = {**changes, "role": after["role"], "active": bool(after["active"]),
                 "seal": _seal(after["password_hash"])}
        audit(conn, actor, "account_changed", None, username=row["username"], **state)
        return _account(after)


def set_password(db: Database, actor: str, username: str, password: str) -> None:
    digest = _hasher.hash(_password(password))
    with db.write() as conn:
        row = _row(conn, (username or "").strip())
        if row is None:
            raise StoreError(f"there is no account {username!r}")
        conn.execute("UPDATE accounts SET password_hash = ?, changed_at = ? WHERE pk = ?", (digest, now(), row["pk"]))
        audit(conn, actor, "password_changed", None, username=row["username"], seal=_seal(digest))


def _verified(row: Row | None, password: str, conn: Conn | None = None) -> bool:
    if row is not None and conn is not None:
        why = _row_problem(row, audited_state(conn)[1].get(row["username"].casefold()))
        if why:
            log.warning("account %s refused: %s", row["username"], why)
            row = None
    if row is None or not row["active"]:
        _hasher.hash("x" * MIN_PASSWORD_CHARS)  # the same time as a real check: no user-name oracle
        return False
    try:
        return bool(_hasher.verify(row["password_hash"], password))
    except (VerificationError, InvalidHashError):
        return False


def authenticate(db: Database, username: str, password: str) -> Identity:
    """The signed-in :class:`Identity` of ``username``, or :class:`AuthenticationError`
    (:data:`REFUSED`, whatever was wrong; the lockout's message while the name is locked,
    :mod:`engine.store.lockout`). Every outcome is audited."""
    name = (username or "").strip()
    with db.read() as conn:
        until = locked_until(conn, printable(name)[:MAX_USERNAME_CHARS])
        if until is None:
            row = _row(conn, name)
            ok = _verified(row, password or "", conn)
    if until is not None:  # the password is not even checked
        with db.write() as conn:
            audit(conn, name or "?", "sign_in_locked", None, username=printable(name)[:MAX_USERNAME_CHARS])
        raise AuthenticationError(lockout_message(until))
    if not ok or row is None:
        with db.write() as conn:  # committed before the refusal is raised
            audit(conn, name or "?", "sign_in_refused", None, username=printable(name)[:MAX_USERNAME_CHARS])
        raise AuthenticationError(REFUSED)
    with db.write() as conn:
        if _hasher.check_needs_rehash(row["password_hash"]):
            digest = _hasher.hash(password)
            conn.execute("UPDATE accounts SET password_hash = ? WHERE pk = ?", (digest, row["pk"]))
            audit(conn, row["username"], "password_rehashed", None, username=row["username"], seal=_seal(digest))
        audit(conn, row["username"], "signed_in", None)
    return Identity(row["username"], Role(row["role"]), "password", row["display_name"], secrets.token_hex(16))


def check_password(db: Database, username: str, password: str) -> bool:
    """Whether ``password`` is ``username``'s (an active account): the re-entry at sign-off."""
    with db.read() as conn:
        row = _row(conn, (username or "").strip())
        return _verified(row, password or "", conn)


def _role_in(conn: Conn, username: str, audited: dict[str, AuditedAccount]) -> Role | None:
    row = _row(conn, username)
    if row is None or not row["active"]:
        return None
    why = _row_problem(row, audited.get(row["username"].casefold()))
    if why:
        log.warning("account %s refused: %s", username, why)
        return None
    return Role(row["role"])


def current_role(db: Database, username: str) -> Role | None:
    """The role of the active account ``username`` now (``None``: no such active account, or its
    row differs from its audited state)."""
    with db.read() as conn:
        return _role_in(conn, username, audited_state(conn)[1])


def access_state(db: Database, username: str | None) -> tuple[LabPolicy, Role | None]:
    """The effective policy and, when accounts are required, ``username``'s current role: one
    read and one replay of the audit trail for the check every change goes through."""
    with db.read() as conn:
        table, (audited_policy, audited) = _table_policy(conn), audited_state(conn)
        effective = _stricter(table, audited_policy)
        role = _role_in(conn, username, audited) if username and effective.accounts_required else None
    return effective, role


__all__ = ["MIN_PASSWORD_CHARS", "REFUSED", "Account", "AuditedAccount", "LabPolicy", "access_state", "audited_state",
           "authenticate", "check_password", "create_account", "current_role", "get_account", "integrity_problems",
           "list_accounts", "policy", "read_policy", "set_password", "set_policy", "update_account"]
