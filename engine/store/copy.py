"""Copying a workstation's history into the lab's database (``main.py store migrate SRC DST``).

Every row of every table — samples, images, predictions, reviews, the audit log, accounts,
the lab policy and the lab's shared models with their files and activation history — is copied
with its primary key, in one transaction on the destination, so the audit log's hash chain
arrives exactly as it was written (each entry's hash covers the one before it: a re-keyed copy
could not be verified). The destination must therefore hold no history yet; a lab that brings
several workstations together copies the first into a new lab database and keeps the others'
files (read-only) beside it. After the copy the row counts of both, the whole
chain of the destination and its last hash against the source's are checked; any difference
rolls the copy back (:class:`StoreError`), so the lab database is either complete or untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.store.errors import StoreError

#: In the order the foreign keys need.
TABLES: tuple[str, ...] = ("samples", "images", "predictions", "reviews", "audit_log", "accounts", "lab_policy",
                           "lab_models", "lab_model_files", "lab_active_model")
#: The tables whose ``pk`` is generated (PostgreSQL's sequences continue after the copied keys).
_KEYED: tuple[str, ...] = tuple(t for t in TABLES if t not in ("lab_policy", "lab_model_files"))
#: A deterministic order for the tables without a ``pk`` (each its primary key).
_ORDER: dict[str, str] = {"lab_policy": "key", "lab_model_files": "model_pk, name"}
_BATCH = 500
#: Model files are megabytes each: copied a few at a time.
_BLOB_BATCH = 4


@dataclass(frozen=True)
class CopyReport:
    counts: dict[str, int]
    audit_entries: int
    last_hash: str

    def describe(self) -> str:
        rows = ", ".join(f"{n} {table}" for table, n in self.counts.items())
        return f"copied {rows}; audit trail intact ({self.audit_entries} entries, last hash {self.last_hash[:12]}...)"


def _empty_columns(conn, table: str) -> list[str]:
    """The table's columns, as this engine lists them."""
    return list(conn.execute(f"SELECT * FROM {table} WHERE 1 = 0").columns)


def copy_store(source, destination) -> CopyReport:
    """Copy ``source``'s whole history into the empty ``destination`` (two open
    :class:`~engine.store.results.ResultStore`); returns what was copied and checked."""
    from engine.store.audit import check_chain

    src_check = source.verify_audit()
    if not src_check.ok:
        raise StoreError(f"{source.path}: not copied: its audit trail is damaged ({src_check.reason})")
    with source._db.read() as src:
        counts = {t: int(src.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
        with destination._db.write() as dst:
            held = {t: int(dst.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
            if any(held.values()):
                raise StoreError(f"{destination.path}: not copied: the destination already holds a history "
                                 f"({', '.join(f'{n} {t}' for t, n in held.items() if n)}); copy into a new, "
                                 "empty lab database")
            for table in TABLES:
                _copy_table(src, dst, table)
            if dst.dialect == "postgresql":  # new rows continue after the copied keys
                for table in _KEYED:
                    dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), "
                                f"COALESCE((SELECT MAX(pk) FROM {table}), 0) + 1, false)")
            copied = {t: int(dst.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
            if copied != counts:
                raise StoreError(f"{destination.path}: the copy was rolled back: row counts differ "
                                 f"(source {counts}, copy {copied})")
            check = check_chain(dst, None)
            if not check.ok or check.last_hash != src_check.last_hash or check.n_entries != src_check.n_entries:
                raise StoreError(f"{destination.path}: the copy was rolled back: its audit trail does not verify "
                                 f"({check.reason or 'the last hash differs from the source'})")
    return CopyReport(counts, check.n_entries, check.last_hash)


def _copy_table(src, dst, table: str) -> None:
    columns = _empty_columns(src, table)
    order = _ORDER.get(table, "pk")
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    batch = _BLOB_BATCH if table == "lab_model_files" else _BATCH
    offset = 0
    while True:
        rows = src.execute(f"SELECT {names} FROM {table} ORDER BY {order} LIMIT {batch} OFFSET {offset}").fetchall()
        if not rows:
            return
        if table == "audit_log":  # one at a time: the head follows each insert by trigger
            for row in rows:
                dst.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row))
        else:
            dst.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", [tuple(r) for r in rows])
        offset += len(rows)


__all__ = ["TABLES", "CopyReport", "copy_store"]
