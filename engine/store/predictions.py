"""Model predictions: what a model has still to classify (resume), and each image's current
prediction joined with its current review (recording them: :mod:`engine.store.recording`).

The functions behind :class:`engine.store.results.ResultStore`'s methods of the same names (their
docstrings are the contract); each takes the store's :class:`~engine.store.database.Database`.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Literal

from engine.core.flags import parse_codes
from engine.core.records import ReviewedImage
from engine.store.database import Database
from engine.store.errors import StoreError
from engine.store.rows import WITHDRAWN_REVIEW


class Content(Enum):
    """The type of :data:`STORED_CONTENT` (one member: a default no sha256 can be mistaken for)."""

    STORED = "the image's stored sha256"


#: ``record_prediction(..., image_sha256=STORED_CONTENT)``: the result was made from the content
#: the store has hashed for the image (the default).
STORED_CONTENT: Literal[Content.STORED] = Content.STORED


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
