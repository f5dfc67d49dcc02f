"""The audit log's hash chain: append-only, and edits or deletions made behind ALLSight's back show.

Each ``audit_log`` row carries ``prev_hash`` (the ``entry_hash`` of the row before it; the first
row: :data:`GENESIS_HASH`) and ``entry_hash``, the sha256 of :func:`canonical` (the row's ``ts``,
``actor``, ``action``, ``sample_pk``, ``image_pk``, its stored ``details`` JSON text and
``prev_hash``). The one-row ``audit_head`` table holds the number of entries and the last pk and
hash; a trigger keeps it in step with every insert, in the same transaction.

Triggers (:data:`TRIGGERS`) refuse ``UPDATE`` and ``DELETE`` on ``audit_log`` and any change of
``audit_head`` that does not follow an insert. Someone with an SQLite tool can drop a trigger;
the chain is what then shows the change: :func:`check_chain` says which entry was changed or
which are missing, in words. What it cannot show is in docs/store.md ("What the chain proves").
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64

#: The version of :func:`canonical`'s serialisation (part of what is hashed).
CHAIN_VERSION = 1

#: Triggers protecting the log; their names are checked by :func:`check_chain`.
TRIGGERS: dict[str, str] = {
    "audit_log_no_update": """
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: an entry cannot be changed'); END""",
    "audit_log_no_delete": """
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: an entry cannot be deleted'); END""",
    "audit_log_head": """
CREATE TRIGGER audit_log_head AFTER INSERT ON audit_log
BEGIN UPDATE audit_head SET n_entries = n_entries + 1, last_pk = NEW.pk, last_hash = NEW.entry_hash
      WHERE id = 1; END""",
    "audit_head_follows_log": """
CREATE TRIGGER audit_head_follows_log BEFORE UPDATE ON audit_head
WHEN NEW.id IS NOT OLD.id OR NEW.n_entries IS NOT OLD.n_entries + 1
     OR NEW.last_pk IS NOT (SELECT MAX(pk) FROM audit_log)
     OR NEW.last_hash IS NOT (SELECT entry_hash FROM audit_log WHERE pk = NEW.last_pk)
BEGIN SELECT RAISE(ABORT, 'the audit head only moves with a new audit entry'); END""",
    "audit_head_no_delete": """
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END""",
}

AUDIT_HEAD_TABLE = """
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    n_entries INTEGER NOT NULL,
    last_pk   INTEGER,
    last_hash TEXT NOT NULL
)"""


def canonical(ts: str, actor: str, action: str, sample_pk: int | None, image_pk: int | None, details: str,
              prev_hash: str) -> bytes:
    """The bytes hashed for one entry: a JSON array of the fields in a fixed order, no spaces,
    ASCII only. ``details`` is the stored JSON text itself (written with sorted keys)."""
    return json.dumps([CHAIN_VERSION, ts, actor, action, sample_pk, image_pk, details, prev_hash],
                      separators=(",", ":"), ensure_ascii=True).encode("ascii")


def entry_hash(ts: str, actor: str, action: str, sample_pk: int | None, image_pk: int | None, details: str,
               prev_hash: str) -> str:
    """sha256 (hex) of :func:`canonical`."""
    return hashlib.sha256(canonical(ts, actor, action, sample_pk, image_pk, details, prev_hash)).hexdigest()


def append(conn: Any, ts: str, actor: str, action: str, sample_pk: int | None,
           image_pk: int | None, details: str) -> None:
    """Insert one chained entry (inside the caller's write transaction); the head follows by trigger."""
    append_many(conn, [(ts, actor, action, sample_pk, image_pk, details)])


def append_many(conn: Any, entries: Sequence[tuple[str, str, str, int | None, int | None, str]]) -> None:
    """Insert chained entries ``(ts, actor, action, sample_pk, image_pk, details)``, in order,
    inside the caller's write transaction, with one ``executemany``; the head follows each by
    trigger. On PostgreSQL the head row is locked first, so concurrent writers append one after
    another (on SQLite the write transaction already holds the file's write lock)."""
    if not entries:
        return
    lock = " FOR UPDATE" if getattr(conn, "dialect", "sqlite") == "postgresql" else ""
    head = conn.execute(f"SELECT last_hash FROM audit_head WHERE id = 1{lock}").fetchone()
    prev = head[0] if head is not None else _last_hash(conn)
    rows = []
    for ts, actor, action, sample_pk, image_pk, details in entries:
        digest = entry_hash(ts, actor, action, sample_pk, image_pk, details, prev)
        rows.append((ts, actor, action, sample_pk, image_pk, details, prev, digest))
        prev = digest
    conn.executemany("INSERT INTO audit_log (ts, actor, action, sample_pk, image_pk, details, prev_hash, entry_hash) "
                     "VALUES (?,?,?,?,?,?,?,?)", rows)


def _last_hash(conn: Any) -> str:
    row = conn.execute("SELECT entry_hash FROM audit_log ORDER BY pk DESC LIMIT 1").fetchone()
    return GENESIS_HASH if row is None or row[0] is None else str(row[0])


def chain_existing(conn: sqlite3.Connection) -> int:
    """Schema 4's migration: hash the rows already there in pk order, create the head and the
    triggers. Returns the number of entries chained."""
    prev, n, last_pk = GENESIS_HASH, 0, None
    updates = []
    for pk, ts, actor, action, sample_pk, image_pk, details in conn.execute(
            "SELECT pk, ts, actor, action, sample_pk, image_pk, details FROM audit_log ORDER BY pk"):
        digest = entry_hash(ts, actor, action, sample_pk, image_pk, details, prev)
        updates.append((prev, digest, pk))
        prev, n, last_pk = digest, n + 1, pk
    conn.executemany("UPDATE audit_log SET prev_hash = ?, entry_hash = ? WHERE pk = ?", updates)
    conn.execute(AUDIT_HEAD_TABLE)
    conn.execute("INSERT INTO audit_head (id, n_entries, last_pk, last_hash) VALUES (1, ?, ?, ?)", (n, last_pk, prev))
    for sql in TRIGGERS.values():
        conn.execute(sql)
    return n


def _table_and_trigger_names(conn) -> set[str]:
    """The tables and triggers the database has, on either engine."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                            "UNION SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").fetchall()
    else:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')").fetchall()
    return {r[0] for r in rows}


# ------------------------------------------------------------------------------------ checking
@dataclass(frozen=True)
class AuditCheck:
    """The result of checking the audit chain.

    ``ok``: nothing wrong was found. ``n_entries``: the entries in the log now. ``first_bad_pk``:
    the first entry found changed or missing (``None`` when ok, or when the problem is no single
    entry). ``reason``: what is wrong, in plain words ("" when ok). ``full``: the whole chain was
    checked (``False``: only its last entries and the count, as on opening). ``last_hash``: the
    last entry's hash, which a lab may note down elsewhere to detect a rewrite of the whole log.
    """

    ok: bool
    n_entries: int
    first_bad_pk: int | None = None
    reason: str = ""
    full: bool = True
    last_hash: str = ""

    def describe(self) -> str:
        """One line for a person: "audit trail intact: N entries" or the problem."""
        if self.ok:
            return f"audit trail intact: {self.n_entries} entries" + ("" if self.full else " (recent entries checked)")
        return f"audit trail damaged: {self.reason}"


def _span(first: int, last: int) -> str:
    return f"entry {first} is missing (deleted)" if first == last else f"entries {first}–{last} are missing (deleted)"


#: How many of the last entries :func:`check_chain` checks with ``tail`` (on opening).
OPEN_TAIL = 2000


def check_chain(conn: Any, tail: int | None = None) -> AuditCheck:
    """Check the chain: every entry's hash, every link, the head's count and last hash, the
    triggers. With ``tail``: only the last ``tail`` entries' hashes and links (plus the count and
    the head), which is what opening a database does; ``None``: the whole chain."""
    names = _table_and_trigger_names(conn)
    n_rows = int(conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
    full = tail is None or n_rows <= tail
    if "audit_head" not in names:
        return AuditCheck(False, n_rows, None, "the audit head (the record of the last entry and the count) "
                          "was removed", full)
    head = conn.execute("SELECT n_entries, last_pk, last_hash FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        return AuditCheck(False, n_rows, None, "the audit head (the record of the last entry and the count) "
                          "was deleted", full)
    head_n, head_pk, head_hash = int(head[0]), head[1], str(head[2])

    if full:
        rows = conn.execute("SELECT pk, ts, actor, action, sample_pk, image_pk, details, prev_hash, entry_hash "
                            "FROM audit_log ORDER BY pk")
        expected_prev: str | None = GENESIS_HASH
        prev_pk = 0
    else:
        assert tail is not None
        start = conn.execute("SELECT pk, entry_hash FROM audit_log ORDER BY pk DESC LIMIT 1 OFFSET ?",
                             (tail,)).fetchone()
        prev_pk, expected_prev = int(start[0]), start[1]
        rows = conn.execute("SELECT pk, ts, actor, action, sample_pk, image_pk, details, prev_hash, entry_hash "
                            "FROM audit_log WHERE pk > ? ORDER BY pk", (prev_pk,))
    last_pk, last_hash = (prev_pk or None), (expected_prev or "")
    for pk, ts, actor, action, sample_pk, image_pk, details, prev_hash, digest in rows:
        bad = _check_row(pk, (ts, actor, action, sample_pk, image_pk, details), prev_hash, digest,
                         expected_prev, prev_pk)
        if bad is not None:
            return AuditCheck(False, n_rows, bad[0], bad[1], full, head_hash)
        expected_prev, prev_pk, last_pk, last_hash = digest, pk, pk, digest

    problem: tuple[int | None, str] | None
    if last_pk is None and n_rows == 0 and head_n == 0 and head_pk is None and head_hash == GENESIS_HASH:
        problem = None
    elif head_pk is not None and (last_pk is None or head_pk > last_pk):
        first = (last_pk or 0) + 1
        what = "entry" if first == head_pk else "entries"
        span = f"{first}" if first == head_pk else f"{first}–{head_pk}"
        problem = (first, f"the chain's last {what} {'is' if what == 'entry' else 'are'} missing "
                          f"({what} {span} deleted)")
    elif head_pk != last_pk or head_hash != last_hash:
        problem = (last_pk, f"entry {last_pk} was changed after it was written (its hash was recomputed, but it "
                            "does not match the recorded last entry), or the audit head was altered")
    elif head_n != n_rows:
        problem = (None, f"the audit log has {n_rows} entries but {head_n} were written")
    else:
        problem = None
    if problem is not None:
        return AuditCheck(False, n_rows, problem[0], problem[1], full, head_hash)
    missing = [name for name in TRIGGERS if name not in names]
    if missing:
        return AuditCheck(False, n_rows, None, "the chain is intact, but the protection of the audit log was "
                          f"removed (trigger {', '.join(missing)} dropped)", full, last_hash)
    return AuditCheck(True, n_rows, None, "", full, last_hash)


def _check_row(pk: int, fields: tuple[Any, ...], prev_hash: str | None, digest: str | None,
               expected_prev: str | None, prev_pk: int) -> tuple[int, str] | None:
    """``(first bad pk, reason)`` for one row, or ``None`` when it is sound and follows on."""
    if digest is None or prev_hash is None:
        return pk, f"entry {pk} has no hash: it was not written by ALLSight"
    ts, actor, action, sample_pk, image_pk, details = fields
    if entry_hash(ts, actor, action, sample_pk, image_pk, details, prev_hash) != digest:
        return pk, f"entry {pk} was changed after it was written"
    if prev_hash != expected_prev:
        if pk > prev_pk + 1:
            return prev_pk + 1, _span(prev_pk + 1, pk - 1)
        if prev_pk == 0:
            return pk, f"entry {pk} was changed after it was written (it no longer starts the chain)"
        return prev_pk, (f"entry {prev_pk} was changed after it was written (its hash was recomputed, so "
                         f"entry {pk} no longer follows from it)")
    return None


__all__ = ["CHAIN_VERSION", "GENESIS_HASH", "OPEN_TAIL", "TRIGGERS", "AuditCheck", "append", "canonical",
           "chain_existing", "check_chain", "entry_hash"]
