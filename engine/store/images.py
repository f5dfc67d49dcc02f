"""A sample's images: adding files, noticing the ones that changed on disk, listing them.

The functions behind :class:`engine.store.results.ResultStore`'s methods of the same names (their
docstrings are the contract); each takes the store's :class:`~engine.store.database.Database`.
Files are stat'ed and hashed between a read and a write, outside the database lock, so that a
slow disk never holds up another thread's call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from engine.core.textsafe import printable
from engine.store.database import Database
from engine.store.errors import StoreError
from engine.store.identity import file_identity, file_state
from engine.store.naming import image_key, storable
from engine.store.records import ImageRecord
from engine.store.rows import audit, insert_images, refuse_if_signed, touch


def add_images(db: Database, sample_id: str, paths: Iterable[str | os.PathLike[str]], actor: str) -> int:
    wanted = list(dict.fromkeys(image_key(p) for p in paths))
    unstorable = [p for p in wanted if not storable(p)]
    if unstorable:
        raise StoreError(f"{len(unstorable)} file name(s) are not valid UTF-8 and cannot be kept in the history "
                         f"(first: {printable(unstorable[0])}); rename them")
    with db.read() as conn:
        row = db.sample_row(conn, sample_id)
        known = {r["path"]: r for r in conn.execute(
            "SELECT pk, path, sha256, size, mtime_ns FROM images WHERE sample_pk = ?", (row["pk"],))}
    new = [p for p in wanted if p not in known]
    if row["signed_off_at"] is not None:
        if new:
            refuse_if_signed(row, "adding images")
        return 0
    # Outside the lock: a stat per known file, a hash per new or changed one.
    recheck = []
    for p in wanted:
        old = known.get(p)
        if old is None:
            continue
        stored = (old["sha256"], old["size"], old["mtime_ns"])
        if stored[0] is None or file_identity(p) != stored[1:]:
            state = file_state(p)
            if (state.sha256, state.size, state.mtime_ns) != stored:
                recheck.append((old, state))
    states = [(p, file_state(p)) for p in new]
    if not states and not recheck:
        return 0
    with db.write() as conn:
        row = db.sample_row(conn, sample_id)
        if states:
            refuse_if_signed(row, "adding images")
        elif row["signed_off_at"] is not None:
            return 0  # signed off meanwhile: its images are left as they are
        actor = actor or row["operator"]
        added = insert_images(conn, row["pk"], states)
        changed = 0
        for old, state in recheck:
            # Only if nobody updated it meanwhile (another run may have noticed first).
            cur = conn.execute(
                "UPDATE images SET sha256 = ?, size = ?, mtime_ns = ? "
                "WHERE pk = ? AND sha256 IS NOT DISTINCT FROM ? AND size IS NOT DISTINCT FROM ? AND mtime_ns IS NOT DISTINCT FROM ?",
                (state.sha256, state.size, state.mtime_ns, old["pk"], old["sha256"], old["size"],
                 old["mtime_ns"]))
            if cur.rowcount == 1 and state.sha256 != old["sha256"]:
                changed += 1
                audit(conn, actor, "image_changed", row["pk"], old["pk"], old_sha256=old["sha256"],
                      sha256=state.sha256, old_size=old["size"], size=state.size)
        if added or changed:
            touch(conn, row["pk"])
        if added:
            audit(conn, actor, "add_images", row["pk"], count=added)
    return added


def images(db: Database, sample_id: str) -> list[ImageRecord]:
    with db.read() as conn:
        row = db.sample_row(conn, sample_id)
        rows = conn.execute("SELECT path, file_name, sha256, size, position, added_at, mtime_ns FROM images "
                            "WHERE sample_pk = ? ORDER BY position, pk", (row["pk"],)).fetchall()
    return [ImageRecord(row["sample_id"], *r) for r in rows]


def changed_images(db: Database, sample_id: str) -> list[str]:
    with db.read() as conn:
        row = db.sample_row(conn, sample_id)
        rows = conn.execute("SELECT path, sha256, size, mtime_ns FROM images WHERE sample_pk = ? "
                            "ORDER BY position, pk", (row["pk"],)).fetchall()
    out = []
    for r in rows:  # outside the lock: stats and hashes
        if r["sha256"] is not None and file_identity(r["path"]) == (r["size"], r["mtime_ns"]):
            continue
        if file_state(r["path"]).sha256 != r["sha256"]:
            out.append(r["path"])
    return out
