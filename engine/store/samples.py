"""Samples: creating one, the one sample-naming rule of both front ends, reading and editing.

The functions behind :class:`engine.store.results.ResultStore`'s methods of the same names (their
docstrings are the contract); each takes the store's :class:`~engine.store.database.Database`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable

from engine.store.database import Conn, Database
from engine.store.errors import StoreError
from engine.store.naming import image_key
from engine.store.records import Sample
from engine.store.rows import SAMPLE_COLUMNS, audit, now, refuse_if_signed, required, to_sample


def _folder_key(folder: str | os.PathLike[str]) -> str:
    """A sample's folder as stored: normalised, or "" for files from several folders."""
    return image_key(folder) if os.fspath(folder) else ""


def _insert_sample(conn: Conn, sample_id: str, folder: str, patient_id: str, operator: str,
                   actor: str) -> bool:
    """Create the sample unless it exists; False when another workstation created it meanwhile
    (on PostgreSQL the insert then waits for that transaction and does nothing)."""
    created = now()
    row = conn.execute(
        "INSERT INTO samples (sample_id, folder, patient_id, operator, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT (sample_id) DO NOTHING RETURNING pk",
        (sample_id, folder, patient_id or "", operator or "", created, created)).fetchone()
    if row is None:
        return False
    audit(conn, actor or operator, "create_sample", row[0], folder=folder,
          patient_id=patient_id or "", operator=operator or "")
    return True


def _sample_by_id(conn: Conn, sample_id: str) -> Sample:
    row = conn.execute(f"SELECT {SAMPLE_COLUMNS} FROM samples s WHERE s.sample_id = ?", (sample_id,)).fetchone()
    return to_sample(row)


def create_or_get_sample(db: Database, sample_id: str, folder: str | os.PathLike[str], patient_id: str,
                         operator: str, actor: str = "") -> Sample:
    sample_id = required(sample_id, "sample id")
    with db.write() as conn:
        if conn.execute("SELECT 1 FROM samples WHERE sample_id = ?", (sample_id,)).fetchone() is None:
            _insert_sample(conn, sample_id, _folder_key(folder), patient_id, operator, actor)
        return _sample_by_id(conn, sample_id)


def register_sample(db: Database, name: str, folder: str | os.PathLike[str], *, patient_id: str, operator: str,
                    taken: Iterable[str], actor: str = "") -> tuple[Sample, bool]:
    name = required(name, "sample id")
    folder_s = _folder_key(folder)
    skip = set(taken)
    for n in itertools.count(1):
        candidate = name if n == 1 else f"{name} ({n})"
        if candidate in skip:
            continue
        with db.write() as conn:  # look up and create in one transaction
            row = conn.execute("SELECT folder FROM samples WHERE sample_id = ?", (candidate,)).fetchone()
            if row is not None and row["folder"] != folder_s:
                continue  # another folder's sample
            if row is None and not _insert_sample(conn, candidate, folder_s, patient_id, operator, actor):
                # another workstation registered this name at the same moment
                row = conn.execute("SELECT folder FROM samples WHERE sample_id = ?", (candidate,)).fetchone()
                if row["folder"] != folder_s:
                    continue
            return _sample_by_id(conn, candidate), row is None
    raise AssertionError("unreachable")  # itertools.count never ends


def get_sample(db: Database, sample_id: str) -> Sample | None:
    with db.read() as conn:
        row = conn.execute(f"SELECT {SAMPLE_COLUMNS} FROM samples s WHERE s.sample_id = ?",
                           (sample_id,)).fetchone()
    return None if row is None else to_sample(row)


def list_samples(db: Database) -> list[Sample]:
    with db.read() as conn:
        rows = conn.execute(f"SELECT {SAMPLE_COLUMNS} FROM samples s "
                            "ORDER BY s.created_at DESC, s.pk DESC").fetchall()
    return [to_sample(r) for r in rows]


def update_sample(db: Database, sample_id: str, *, new_sample_id: str | None, patient_id: str | None,
                  operator: str | None, actor: str) -> Sample:
    actor = required(actor, "actor")
    with db.write() as conn:
        row = db.sample_row(conn, sample_id)
        refuse_if_signed(row, "editing it")
        changes: dict[str, list[str]] = {}
        new_values = {"sample_id": None if new_sample_id is None else required(new_sample_id, "new sample id"),
                      "patient_id": patient_id, "operator": operator}
        for column, value in new_values.items():
            if value is not None and value != row[column]:
                changes[column] = [row[column], value]
        if changes:
            if "sample_id" in changes and conn.execute(
                    "SELECT 1 FROM samples WHERE sample_id = ?", (new_values["sample_id"],)).fetchone():
                raise StoreError(f"cannot rename sample {sample_id!r}: "
                                 f"a sample {new_values['sample_id']!r} already exists")
            sets = ", ".join(f"{c} = ?" for c in changes)
            conn.execute(f"UPDATE samples SET {sets}, updated_at = ? WHERE pk = ?",
                         (*(v[1] for v in changes.values()), now(), row["pk"]))
            audit(conn, actor, "update_sample", row["pk"], changes=changes)
        current = new_values["sample_id"] if "sample_id" in changes else sample_id
        out = conn.execute(f"SELECT {SAMPLE_COLUMNS} FROM samples s WHERE s.sample_id = ?",
                           (current,)).fetchone()
    return to_sample(out)
