"""engine.store.results stays the store's one entry point after its split into modules: every name
its callers import from it is still there, as the very object its own module defines."""

from __future__ import annotations

import engine.store.results as results
from engine.store import errors, identity, predictions, records, review, rows, schema
from engine.store.audit import AuditCheck


def test_every_exported_name_is_importable():
    missing = [name for name in results.__all__ if not hasattr(results, name)]
    assert not missing


def test_moved_names_are_the_same_objects():
    moved = {
        "hash_file": identity, "MAX_HASHED_FILE_BYTES": identity,
        "Sample": records, "ImageRecord": records, "AuditEntry": records,
        "STORED_CONTENT": predictions, "REVIEW_CLASSES": review, "MAX_STATEMENT_CHARS": review,
        "WITHDRAWN_REVIEW": rows, "StoreError": errors, "SignOffError": errors,
        "migrate": schema, "MIGRATIONS": schema, "SCHEMA_VERSION": schema,
    }
    for name, module in moved.items():
        assert getattr(results, name) is getattr(module, name), name
    assert results.AuditCheck is AuditCheck


def test_stored_content_is_one_sentinel():
    # record_prediction tells "the stored sha256" from a given one (or None) by identity, so the
    # default a caller imports from results must be the object the predictions module compares with.
    assert results.STORED_CONTENT is predictions.STORED_CONTENT is predictions.Content.STORED
    assert results.STORED_CONTENT not in (None, "")
