"""Model predictions: recording one result per image, model file and content; what a model has
still to classify (resume); and each image's current prediction joined with its current review.

The functions behind :class:`engine.store.results.ResultStore`'s methods of the same names (their
docstrings are the contract); each takes the store's :class:`~engine.store.database.Database`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal

from engine import CLASS_IDS
from engine.core.flags import codes_from_legacy, format_codes, normalize, parse_codes
from engine.core.records import ImageResult, ReviewedImage
from engine.store.database import Database
from engine.store.errors import StoreError
from engine.store.identity import FileState, file_state
from engine.store.naming import image_key
from engine.store.rows import WITHDRAWN_REVIEW, audit, insert_image, now, refuse_if_signed, required, touch


class Content(Enum):
    """The type of :data:`STORED_CONTENT` (one member: a default no sha256 can be mistaken for)."""

    STORED = "the image's stored sha256"


#: ``record_prediction(..., image_sha256=STORED_CONTENT)``: the result was made from the content
#: the store has hashed for the image (the default).
STORED_CONTENT: Literal[Content.STORED] = Content.STORED


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def record_prediction(db: Database, sample_id: str, path: str | os.PathLike[str], result: ImageResult,
                      model_id: str, model_version: str, model_sha256: str, who: Callable[[], str], *,
                      image_sha256: str | None | Literal[Content.STORED]) -> bool:
    model_sha256 = required(model_sha256, "model sha256")
    key = image_key(path)
    status = getattr(result, "status", None)
    if status not in ("ok", "error"):
        raise StoreError(f"{key}: result status must be 'ok' or 'error', not {status!r}")
    predicted = getattr(result, "predicted_class", None)
    if status == "ok" and predicted not in CLASS_IDS:
        raise StoreError(f"{key}: unknown predicted class {predicted!r}; expected one of {', '.join(CLASS_IDS)}")
    probs = getattr(result, "probabilities", None)
    probs_json = None if probs is None else json.dumps({str(k): float(v) for k, v in dict(probs).items()})
    needs_review = bool(getattr(result, "needs_review", False))
    ood = bool(getattr(result, "out_of_distribution", False))
    flags = getattr(result, "flags", None)
    try:
        if flags is None:
            codes = codes_from_legacy(getattr(result, "ood_reason", "") or "", needs_review=needs_review,
                                      out_of_distribution=ood) if status == "ok" else ()
        else:
            codes = normalize(flags)
    except ValueError as err:
        raise StoreError(f"{key}: {err}") from None
    values = (model_id or "", model_version or "", model_sha256, status, predicted,
              _opt_float(getattr(result, "confidence", None)), probs_json, int(needs_review), int(ood),
              _opt_float(getattr(result, "ood_score", None)), format_codes(codes),
              getattr(result, "error", None))

    # One transaction per result, the caller's permission check (``who``) read inside it: a lab
    # database sees one round of statements per result. An image not in the sample yet is hashed
    # outside the transaction (a large file; SQLite's write lock is held meanwhile), then run again.
    state: FileState | None = None
    while True:
        with db.write() as conn:
            actor = who()
            row = db.sample_row(conn, sample_id)
            image = conn.execute("SELECT pk, sha256 FROM images WHERE sample_pk = ? AND path = ?",
                                 (row["pk"], key)).fetchone()
            if image is not None:
                content = image["sha256"] if image_sha256 is STORED_CONTENT else image_sha256
                if conn.execute(
                        "SELECT 1 FROM predictions WHERE image_pk = ? AND model_sha256 = ? "
                        "AND image_sha256 IS NOT DISTINCT FROM ? AND status = 'ok'",
                        (image["pk"], model_sha256, content)).fetchone():
                    return False
            refuse_if_signed(row, "recording new predictions")
            if image is not None or state is not None:
                actor = actor or row["operator"]
                if image is None:
                    assert state is not None  # hashed on the previous round
                    image_pk = insert_image(conn, row["pk"], key, state)
                    content = state.sha256 if image_sha256 is STORED_CONTENT else image_sha256
                    audit(conn, actor, "add_images", row["pk"], count=1)
                else:
                    image_pk = int(image["pk"])
                conn.execute(
                    "INSERT INTO predictions (image_pk, model_id, model_version, model_sha256, status, "
                    "predicted_class, confidence, probabilities, needs_review, out_of_distribution, ood_score, "
                    "flags, error, created_at, image_sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (image_pk, *values, now(), content))
                touch(conn, row["pk"])
                audit(conn, actor, "record_prediction", row["pk"], image_pk, model_id=model_id,
                      model_version=model_version, model_sha256=model_sha256, status=status,
                      predicted_class=predicted, image_sha256=content)
                return True
        state = file_state(key)


def pending_paths(db: Database, sample_id: str, model_sha256: str) -> list[str]:
    with db.read() as conn:
        row = db.sample_row(conn, sample_id)
        rows = conn.execute(
            "SELECT i.path FROM images i WHERE i.sample_pk = ? AND NOT EXISTS "
            "(SELECT 1 FROM predictions p WHERE p.image_pk = i.pk AND p.model_sha256 = ? "
            "AND p.image_sha256 IS NOT DISTINCT FROM i.sha256 AND p.status = 'ok') "
            "ORDER BY i.position, i.pk", (row["pk"], model_sha256)).fetchall()
    return [r[0] for r in rows]


def predictions(db: Database, sample_id: str, model_sha256: str | None) -> list[ReviewedImage]:
    model_filter = "" if model_sha256 is None else " AND model_sha256 = :model"
    sql = (
        "SELECT i.path, i.file_name, i.position, i.sha256 AS image_sha256, p.model_id, p.model_version, "
        "p.model_sha256, p.status, p.predicted_class, p.confidence, p.probabilities, p.needs_review, "
        "p.out_of_distribution, p.ood_score, p.flags, p.error, p.created_at AS predicted_at, "
        "r.final_class, r.reviewer, r.created_at AS reviewed_at, r.note "
        "FROM images i "
        "JOIN predictions p ON p.pk = (SELECT MAX(pk) FROM predictions WHERE image_pk = i.pk "
        f"AND image_sha256 IS NOT DISTINCT FROM i.sha256{model_filter}) "
        "LEFT JOIN reviews r ON r.pk = (SELECT MAX(pk) FROM reviews WHERE image_pk = i.pk "
        "AND image_sha256 IS NOT DISTINCT FROM i.sha256) "
        "WHERE i.sample_pk = :sample ORDER BY i.position, i.pk")
    with db.read() as conn:
        row = db.sample_row(conn, sample_id)
        rows = conn.execute(sql, {"sample": row["pk"], "model": model_sha256}).fetchall()
    out = []
    for r in rows:
        reviewed = r["reviewer"] is not None and r["final_class"] != WITHDRAWN_REVIEW
        try:
            flags = parse_codes(r["flags"])
        except ValueError as err:
            raise StoreError(f"{db.path}: {r['path']}: {err} (written by a newer ALLSight?)") from None
        out.append(ReviewedImage(
            sample_id=row["sample_id"], path=r["path"], file_name=r["file_name"], position=r["position"],
            image_sha256=r["image_sha256"], model_id=r["model_id"], model_version=r["model_version"],
            model_sha256=r["model_sha256"], status=r["status"], predicted_class=r["predicted_class"],
            confidence=r["confidence"],
            probabilities=None if r["probabilities"] is None else json.loads(r["probabilities"]),
            needs_review=bool(r["needs_review"]), out_of_distribution=bool(r["out_of_distribution"]),
            ood_score=r["ood_score"], flags=flags, error=r["error"],
            predicted_at=r["predicted_at"],
            final_class=r["final_class"] if reviewed else None,
            reviewed_by=r["reviewer"] if reviewed else None, reviewed_at=r["reviewed_at"] if reviewed else None,
            review_note=(r["note"] or "") if reviewed else ""))
    return out
