"""The reviewer's side: reviews kept beside the model's predictions, the sign-off that freezes a
sample, and reopening it.

The functions behind :class:`engine.store.results.ResultStore`'s methods of the same names (their
docstrings are the contract); each takes the store's :class:`~engine.store.database.Database`.
"""

from __future__ import annotations

import os

from engine import CLASS_IDS
from engine.core.records import EXCLUDED_CLASS, sign_off_blockers
from engine.store.database import Database
from engine.store.errors import ReviewConflictError, SignOffError, StoreError
from engine.store.naming import image_key
from engine.store.predictions import predictions
from engine.store.records import Sample
from engine.store.rows import (
    SAMPLE_COLUMNS,
    WITHDRAWN_REVIEW,
    audit,
    now,
    refuse_if_signed,
    required,
    to_sample,
    touch,
)
from engine.store.samples import get_sample

REVIEW_CLASSES: tuple[str, ...] = (*CLASS_IDS, EXCLUDED_CLASS)

#: The longest sign-off statement accepted.
MAX_STATEMENT_CHARS = 2000


#: ``seen`` of :func:`record_review` when the caller does not say what it saw (no check).
UNCHECKED = object()


def _check_seen(conn, image_pk: int, sha256: str | None, seen: object, key: str) -> None:
    """:class:`ReviewConflictError` unless the image's current review is the one the caller saw
    (``seen``: that review's time, ``None`` for "not reviewed"): an optimistic version check, so
    that of two reviewers changing one image the second is told, and overwrites nothing."""
    latest = conn.execute("SELECT reviewer, final_class, created_at FROM reviews WHERE image_pk = ? "
                          "AND image_sha256 IS NOT DISTINCT FROM ? ORDER BY pk DESC LIMIT 1",
                          (image_pk, sha256)).fetchone()
    withdrawn = latest is None or latest["final_class"] == WITHDRAWN_REVIEW
    current = None if withdrawn else latest["created_at"]
    if seen == current:
        return
    what = "withdrew its review" if withdrawn else f"reviewed it as {latest['final_class']}"
    raise ReviewConflictError(
        f"{os.path.basename(key)}: {latest['reviewer']} {what} at {latest['created_at']}, after you opened it; "
        "nothing was changed. Look at the image again before changing its review.",
        current_class=None if withdrawn else latest["final_class"], changed_by=latest["reviewer"],
        changed_at=latest["created_at"])


def record_review(db: Database, sample_id: str, path: str | os.PathLike[str], final_class: str | None,
                  reviewer: str, note: str, via: str = "", seen: object = UNCHECKED) -> str:
    reviewer = required(reviewer, "reviewer")
    if final_class is not None and final_class not in REVIEW_CLASSES:
        raise StoreError(f"unknown class {final_class!r}; expected one of {', '.join(REVIEW_CLASSES)}")
    key = image_key(path)
    with db.write() as conn:
        row = db.sample_row(conn, sample_id)
        refuse_if_signed(row, "changing reviews")
        image = conn.execute("SELECT pk, sha256 FROM images WHERE sample_pk = ? AND path = ?",
                             (row["pk"], key)).fetchone()
        if image is None:
            raise StoreError(f"{key}: not an image of sample {sample_id!r}")
        image_pk = int(image["pk"])
        if seen is not UNCHECKED:
            _check_seen(conn, image_pk, image["sha256"], seen, key)
        model = conn.execute("SELECT predicted_class FROM predictions WHERE image_pk = ? AND image_sha256 IS NOT DISTINCT FROM ? "
                             "ORDER BY pk DESC LIMIT 1", (image_pk, image["sha256"])).fetchone()
        model_class = None if model is None else model[0]
        created = now()
        conn.execute("INSERT INTO reviews (image_pk, reviewer, final_class, note, created_at, image_sha256) "
                     "VALUES (?,?,?,?,?,?)",
                     (image_pk, reviewer, final_class or WITHDRAWN_REVIEW, note or "", created, image["sha256"]))
        touch(conn, row["pk"])
        if final_class is None:
            audit(conn, reviewer, "withdraw_review", row["pk"], image_pk, model_class=model_class, note=note or "")
        else:
            audit(conn, reviewer, "record_review", row["pk"], image_pk, final_class=final_class,
                  model_class=model_class, overridden=final_class != model_class, note=note or "",
                  **({"via": via} if via else {}))
    return created


def sign_off(db: Database, sample_id: str, reviewer: str, statement: str, *,
             require_independent_reviewer: bool) -> Sample:
    from engine.core.summary import summarize

    reviewer = required(reviewer, "reviewer")
    statement = (statement or "").strip()
    if not statement:
        raise SignOffError(f"cannot sign off sample {sample_id!r}: the sign-off statement must not be empty")
    if len(statement) > MAX_STATEMENT_CHARS:
        raise SignOffError(f"cannot sign off sample {sample_id!r}: the sign-off statement is longer than "
                           f"{MAX_STATEMENT_CHARS} characters")
    with db.lock:  # held to the read-back: the sample returned is the one this call signed off
        with db.write() as conn:
            row = db.sample_row(conn, sample_id)
            records = predictions(db, sample_id, None)  # same connection: read inside this transaction
            if row["signed_off_at"] is not None:
                raise SignOffError(f"sample {sample_id!r} is already signed off by {row['signed_off_by']} "
                                   f"at {row['signed_off_at']}")
            n_images = conn.execute("SELECT COUNT(*) FROM images WHERE sample_pk = ?", (row["pk"],)).fetchone()[0]
            if n_images == 0:
                raise SignOffError(f"sample {sample_id!r} has no images to sign off")
            blockers = sign_off_blockers(records, n_images)
            if blockers:
                raise SignOffError(f"cannot sign off sample {sample_id!r}: {blockers.describe()}",
                                   n_unreviewed=blockers.n_unreviewed, n_pending=blockers.n_pending)
            if require_independent_reviewer:
                classifiers = {str(r[0]) for r in conn.execute(
                    "SELECT DISTINCT actor FROM audit_log WHERE sample_pk = ? AND action = 'record_prediction'",
                    (row["pk"],))}
                if reviewer.casefold() in {a.strip().casefold() for a in classifiers}:
                    raise SignOffError(
                        f"cannot sign off sample {sample_id!r}: {reviewer} classified images of this sample, "
                        "and this lab requires a reviewer other than the person who classified")
            summary = summarize(records)
            signed_at = now()
            conn.execute("UPDATE samples SET signed_off_by = ?, signed_off_at = ?, sign_off_statement = ?, "
                         "updated_at = ? WHERE pk = ?", (reviewer, signed_at, statement, signed_at, row["pk"]))
            audit(conn, reviewer, "sign_off", row["pk"], call=summary.call, call_code=summary.call_code,
                  n_images=summary.n_images, n_reviewed=summary.n_reviewed,
                  models=sorted({r.model_sha256 for r in records}), statement=statement,
                  independent_reviewer_required=require_independent_reviewer)
        return get_sample(db, sample_id)  # type: ignore[return-value]


def reopen(db: Database, sample_id: str, actor: str, reason: str) -> Sample:
    actor = required(actor, "actor")
    reason = required(reason, "reason for reopening")
    with db.write() as conn:
        row = db.sample_row(conn, sample_id)
        if row["signed_off_at"] is None:
            raise StoreError(f"sample {sample_id!r} is not signed off; nothing to reopen")
        conn.execute("UPDATE samples SET signed_off_by = NULL, signed_off_at = NULL, sign_off_statement = NULL, "
                     "updated_at = ? WHERE pk = ?", (now(), row["pk"]))
        audit(conn, actor, "reopen", row["pk"], reason=reason, was_signed_off_by=row["signed_off_by"],
              was_signed_off_at=row["signed_off_at"])
        out = conn.execute(f"SELECT {SAMPLE_COLUMNS} FROM samples s WHERE s.pk = ?", (row["pk"],)).fetchone()
    return to_sample(out)
