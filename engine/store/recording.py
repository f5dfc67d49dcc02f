"""Recording model results: one transaction for a batch of a sample's results.

The function behind :meth:`engine.store.results.ResultStore.record_predictions` and
``record_prediction`` (one result is a batch of one; their docstrings are the contract). It takes
the store's :class:`~engine.store.database.Database`.

Why a batch: on a lab's PostgreSQL every statement is a round trip, and one result cost about
nine (the permission check, the sample, the image, the "already recorded?" check, the insert, the
sample's stamp, the audit head's lock, the audit entry, its notification). A batch pays the
per-transaction part once — the permission check, the sample row, one query for its images, one
for what is recorded already, the stamp, the audit head's lock, one notification — and inserts
its predictions and audit entries with one ``executemany`` each (issue #16's throughput target).
Every result still gets its own audit entry, chained in order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine import CLASS_IDS
from engine.core.flags import codes_from_legacy, format_codes, normalize
from engine.core.records import ImageResult
from engine.store.database import Conn, Database
from engine.store.errors import StoreError
from engine.store.identity import FileState, file_state
from engine.store.naming import image_key
from engine.store.predictions import STORED_CONTENT, Content
from engine.store.rows import audit, audit_many, insert_image, now, refuse_if_signed, required, touch


@dataclass(frozen=True)
class NewPrediction:
    """One result to record: the image's path, the result, and the content it was made from
    (its sha256; by default the one the store has hashed for the image)."""

    path: str | os.PathLike[str]
    result: ImageResult
    image_sha256: str | None | Literal[Content.STORED] = STORED_CONTENT


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def _columns(key: str, result: ImageResult) -> tuple:
    """The prediction row's values after ``image_pk`` and the model's three (checked first)."""
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
    return (status, predicted, _opt_float(getattr(result, "confidence", None)), probs_json, int(needs_review),
            int(ood), _opt_float(getattr(result, "ood_score", None)), format_codes(codes),
            getattr(result, "error", None))


_INSERT = ("INSERT INTO predictions (image_pk, model_id, model_version, model_sha256, status, predicted_class, "
           "confidence, probabilities, needs_review, out_of_distribution, ood_score, flags, error, created_at, "
           "image_sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def record_predictions(db: Database, sample_id: str, items: Sequence[NewPrediction], model_id: str,
                       model_version: str, model_sha256: str, who: Callable[[], str]) -> list[bool]:
    model_sha256 = required(model_sha256, "model sha256")
    keys = [image_key(item.path) for item in items]
    columns = [_columns(key, item.result) for key, item in zip(keys, items, strict=True)]
    if not items:
        return []
    # Images not in the sample yet are hashed outside the transaction (large files; SQLite's write
    # lock would be held meanwhile), then the transaction runs again.
    states: dict[str, FileState] = {}
    while True:
        with db.write() as conn:
            actor = who()  # the caller's permission check, inside the transaction it allows
            row = db.sample_row(conn, sample_id)
            images = _images(conn, row["pk"], keys)
            unhashed = [k for k in dict.fromkeys(keys) if k not in images and k not in states]
            if not unhashed:
                return _write(conn, row, actor or row["operator"], keys, items, columns, images, states,
                              (model_id or "", model_version or "", model_sha256))
        states.update((k, file_state(k)) for k in unhashed)


def _rows_in(conn: Conn, sql: str, fixed: tuple, values: list) -> list:
    """The rows of ``sql`` (its ``IN ({marks})`` filled with ``values``, after the ``fixed``
    parameters), in chunks well under every engine's limit on parameters."""
    rows: list = []
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        rows += conn.execute(sql.format(marks=",".join("?" * len(chunk))), (*fixed, *chunk)).fetchall()
    return rows


def _images(conn: Conn, sample_pk: int, keys: list[str]) -> dict[str, tuple[int, str | None]]:
    """``path -> (pk, sha256)`` of those of ``keys`` the sample has."""
    return {r["path"]: (int(r["pk"]), r["sha256"]) for r in _rows_in(
        conn, "SELECT pk, path, sha256 FROM images WHERE sample_pk = ? AND path IN ({marks})", (sample_pk,),
        list(dict.fromkeys(keys)))}


def _write(conn: Conn, row: Any, actor: str, keys: list[str], items: Sequence[NewPrediction], columns: list[tuple],
           images: dict[str, tuple[int, str | None]], states: dict[str, FileState],
           model: tuple[str, str, str]) -> list[bool]:
    model_sha256 = model[2]
    recorded_ok = {(int(r[0]), r[1]) for r in _rows_in(
        conn, "SELECT image_pk, image_sha256 FROM predictions WHERE model_sha256 = ? AND status = 'ok' "
        "AND image_pk IN ({marks})", (model_sha256,), sorted({pk for pk, _sha in images.values()}))}
    content_of = {}
    for key, item in zip(keys, items, strict=True):
        known = images.get(key)
        stored = known[1] if known is not None else None
        content_of[key] = stored if item.image_sha256 is STORED_CONTENT else item.image_sha256
    todo = [i for i, key in enumerate(keys)
            if key not in images or (images[key][0], content_of[key]) not in recorded_ok]
    if not todo:
        return [False] * len(keys)
    refuse_if_signed(row, "recording new predictions")
    added = 0
    for i in todo:  # images new to the sample, hashed on the previous round
        key = keys[i]
        if key not in images:
            pk = insert_image(conn, row["pk"], key, states[key])
            if pk is None:  # another workstation added it meanwhile (its transaction committed first)
                images[key] = _images(conn, row["pk"], [key])[key]
                continue
            added += 1
            images[key] = (pk, states[key].sha256)
            if items[i].image_sha256 is STORED_CONTENT:
                content_of[key] = states[key].sha256
    if added:
        audit(conn, actor, "add_images", row["pk"], count=added)
    ts = now()  # the predictions' time; audit_many stamps its entries itself
    recorded = [False] * len(keys)
    inserts, entries, seen = [], [], set()
    for i in todo:
        key = keys[i]
        image_pk, content = images[key][0], content_of[key]
        if (image_pk, content) in seen:  # the same image twice in one batch: its first result counts
            continue
        if columns[i][0] == "ok":
            seen.add((image_pk, content))
        recorded[i] = True
        inserts.append((image_pk, *model, *columns[i], ts, content))
        entries.append(("record_prediction", row["pk"], image_pk,
                        {"model_id": model[0], "model_version": model[1], "model_sha256": model_sha256,
                         "status": columns[i][0], "predicted_class": columns[i][1], "image_sha256": content}))
    conn.executemany(_INSERT, inserts)
    touch(conn, row["pk"])
    audit_many(conn, actor, entries)  # one notification for the batch's sample
    return recorded


__all__ = ["NewPrediction", "record_predictions"]
