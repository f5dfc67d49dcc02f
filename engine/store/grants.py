"""Least privilege on a lab's PostgreSQL: what the workstations' database account may do.

The lab database has two accounts (docs/store.md, "Setting up the lab database"): an *owner*,
which creates and migrates the schema, and an *app* account, which every workstation connects as.
The app account gets exactly what the store's code does to each table, and no more:

* :data:`APPEND_ONLY` tables are history: rows are added and read, never changed or removed
  (the audit log and everything it describes — results, reviews, published lab models and the
  lab's model history). Without UPDATE and DELETE on them the app account cannot rewrite history
  even if a trigger were dropped.
* :data:`UPDATED` tables hold current state that changes in place (a sample's IDs and sign-off,
  an image's file identity, the audit chain's head, accounts, the lab policy).
* :data:`WORKING_STATE` is the one table whose rows the app deletes (leases are not history).
* :data:`READ_ONLY`: Alembic's revision table — the app checks it, only the owner migrates.

No table is granted by default: :func:`app_grants` refuses a database holding a table that is
in none of these lists (a new table must be placed in one here, which the tests check), so a
schema change cannot silently leave the app account with too much or too little.
"""

from __future__ import annotations

import re

from engine.store.database import POSTGRESQL, Database
from engine.store.errors import StoreError

APPEND_ONLY: tuple[str, ...] = ("audit_log", "predictions", "reviews", "lab_models", "lab_model_files",
                                "lab_active_model")
UPDATED: tuple[str, ...] = ("samples", "images", "audit_head", "accounts", "lab_policy")
WORKING_STATE: tuple[str, ...] = ("sample_leases",)
READ_ONLY: tuple[str, ...] = ("alembic_version",)

PRIVILEGES: dict[str, str] = {
    **{t: "SELECT, INSERT" for t in APPEND_ONLY},
    **{t: "SELECT, INSERT, UPDATE" for t in UPDATED},
    **{t: "SELECT, INSERT, UPDATE, DELETE" for t in WORKING_STATE},
    **{t: "SELECT" for t in READ_ONLY},
}

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _tables(db: Database) -> list[str]:
    with db.read() as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                            "ORDER BY tablename").fetchall()
    return [str(r[0]) for r in rows]


def app_grants(db: Database, role: str) -> list[str]:
    """The statements that give ``role`` (the workstations' account) what the store needs on
    this database, and take everything else away. Refuses a role name that would need quoting
    and a table it does not know (module docstring)."""
    if db.dialect != POSTGRESQL:
        raise StoreError(f"{db.path}: grants are for a lab's PostgreSQL database; an SQLite file has no accounts")
    if not _ROLE.fullmatch(role):
        raise StoreError(f"{role!r} is not a plain role name (lower-case letters, digits and _, "
                         "starting with a letter): name the workstations' account as created by CREATE ROLE")
    tables = _tables(db)
    unknown = [t for t in tables if t not in PRIVILEGES]
    if unknown:
        raise StoreError(f"{db.path}: no grant is defined for table(s) {', '.join(unknown)}; "
                         "this ALLSight does not know that schema (engine/store/grants.py)")
    statements = [f"GRANT USAGE ON SCHEMA {_schema(db)} TO {role}"]
    for table in tables:
        statements.append(f"REVOKE ALL ON {table} FROM {role}")
        statements.append(f"GRANT {PRIVILEGES[table]} ON {table} TO {role}")
    # New rows of the keyed tables take their pk from a sequence (nextval needs USAGE).
    statements.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {_schema(db)} TO {role}")
    return statements


def _schema(db: Database) -> str:
    with db.read() as conn:
        return str(conn.execute("SELECT current_schema()").fetchone()[0])


def grant_app_role(db: Database, role: str) -> list[str]:
    """Run :func:`app_grants` in one transaction, as the database's owner; returns what was run.
    A role that does not exist, or a connection that may not grant, changes nothing."""
    statements = app_grants(db, role)
    with db.write() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (role,)).fetchone()
        if exists is None:
            raise StoreError(f"{db.path}: there is no database account {role!r}: create it first "
                             f"(CREATE ROLE {role} LOGIN PASSWORD '...')")
        for statement in statements:
            conn.execute(statement)
    return statements


__all__ = ["APPEND_ONLY", "PRIVILEGES", "READ_ONLY", "UPDATED", "WORKING_STATE", "app_grants", "grant_app_role"]
