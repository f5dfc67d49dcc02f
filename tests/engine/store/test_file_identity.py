"""The result store and the files it describes: a stored result is reused only for the content it
was made from; error results are retried; schema 3 (file identity, content per prediction and
review, the application id) and its migration from schema 2."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from engine.store.results import (
    SCHEMA_VERSION,
    ResultStore,
    SignOffError,
    hash_file,
    migrate,
)
from engine.store.schema import APPLICATION_ID
from tests.engine.store.conftest import raw  # noqa: I001
from tests.engine.store.test_results import SHA_A, SHA_B, record, result


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "patient"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(f"content {i}".encode())
    return folder


@pytest.fixture
def store(store_target, folder):
    with ResultStore.open(store_target) as s:
        s.create_or_get_sample("S", folder, operator="op")
        s.add_images("S", sorted(folder.iterdir()))
        yield s


def replace(path: Path, data: bytes, *, mtime_ns: int | None = None) -> None:
    """Write new content; the mtime is moved on explicitly so that a coarse file-system clock
    cannot hide the change (size and mtime are what tell the store to hash again)."""
    before = os.stat(path).st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before + 10**9, before + 10**9 if mtime_ns is None else mtime_ns))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def actions(store, sample="S") -> list[str]:
    return [a.action for a in store.audit(sample)]


# ------------------------------------------------------------------------------- hashing
def test_hash_file_reads_only_regular_files_up_to_the_limit(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 1000)
    assert hash_file(f) == sha(b"x" * 1000)
    assert hash_file(f, max_bytes=999) is None  # over the limit: not read
    assert hash_file(f, max_bytes=1000) == sha(b"x" * 1000)
    link = tmp_path / "link.jpg"
    link.symlink_to(f)
    assert hash_file(link) == hash_file(f)  # a link to an image is that image
    assert hash_file(tmp_path) is None  # a folder
    assert hash_file(tmp_path / "missing") is None
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere")
    assert hash_file(tmp_path / "dangling.jpg") is None


def test_images_keep_size_and_mtime(store, folder):
    rec = store.images("S")[0]
    st = os.stat(folder / "img0.jpg")
    assert (rec.sha256, rec.size, rec.mtime_ns) == (sha(b"content 0"), st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------------------- replaced files
def test_a_replaced_file_is_pending_again_and_its_old_result_is_history(store, folder):
    img = folder / "img0.jpg"
    assert record(store, "S", img, "Pre") is True
    assert str(img) not in store.pending_paths("S", SHA_A)

    replace(img, b"another image entirely")
    assert store.add_images("S", [img]) == 0  # nothing added...
    rec = store.images("S")[0]
    assert rec.sha256 == sha(b"another image entirely") and rec.size == len(b"another image entirely")
    change = store.audit("S")[-1]  # ...but the change is audited
    assert change.action == "image_changed" and change.path == str(img) and change.actor == "op"
    assert change.details["old_sha256"] == sha(b"content 0") and change.details["sha256"] == rec.sha256
    assert store.pending_paths("S", SHA_A)[0] == str(img)
    assert [p.path for p in store.predictions("S")] == []  # the old result is not this file's

    assert record(store, "S", img, "Pro") is True
    assert record(store, "S", img, "Early") is False  # idempotent for the new content
    [now] = store.predictions("S", SHA_A)
    assert now.predicted_class == "Pro" and now.image_sha256 == rec.sha256
    with raw(store) as conn:  # both stay in the history
        rows = conn.execute("SELECT predicted_class, image_sha256 FROM predictions ORDER BY pk").fetchall()
    assert rows == [("Pre", sha(b"content 0")), ("Pro", rec.sha256)]


def test_same_size_new_content_is_noticed_by_the_mtime(store, folder):
    img = folder / "img1.jpg"
    record(store, "S", img)
    replace(img, b"content X")  # same length as "content 1"
    store.add_images("S", [img])
    assert store.images("S")[1].sha256 == sha(b"content X")
    assert store.pending_paths("S", SHA_A) == [str(folder / "img0.jpg"), str(img), str(folder / "img2.jpg")]


def test_a_touched_file_with_the_same_content_is_not_a_change(store, folder):
    img = folder / "img0.jpg"
    record(store, "S", img)
    before = actions(store)
    st = os.stat(img)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    assert store.add_images("S", [img]) == 0
    assert actions(store) == before  # no audit row: no result changed
    assert store.images("S")[0].mtime_ns == st.st_mtime_ns + 5 * 10**9  # identity refreshed
    assert str(img) not in store.pending_paths("S", SHA_A)
    assert store.predictions("S")[0].path == str(img)


def test_a_file_unreadable_when_added_is_hashed_once_it_is_there(store, folder):
    late = folder / "late.jpg"
    store.add_images("S", [late])  # still being copied: not there yet
    assert store.images("S")[-1].sha256 is None
    record(store, "S", late, status="error")
    late.write_bytes(b"arrived")
    store.add_images("S", [late])
    assert store.images("S")[-1].sha256 == sha(b"arrived")
    assert actions(store)[-1] == "image_changed"
    assert store.pending_paths("S", SHA_A)[-1] == str(late)


def test_a_review_does_not_carry_over_to_a_replaced_file(store, folder):
    img = folder / "img0.jpg"
    record(store, "S", img, "Pre", needs_review=True)
    store.record_review("S", img, "Early", "dr")
    replace(img, b"a different smear")
    store.add_images("S", [img])
    record(store, "S", img, "Pro", needs_review=True)
    now = store.predictions("S")[0]
    assert now.predicted_class == "Pro" and not now.reviewed  # the review was of the old content
    store.record_review("S", img, "Pro", "dr")
    assert store.predictions("S")[0].reviewed_by == "dr"
    audit = [a for a in store.audit("S") if a.action == "record_review"]
    assert audit[-1].details["overridden"] is False  # compared with the current content's class


def test_a_result_for_other_content_is_kept_but_not_current(store, folder):
    img = folder / "img0.jpg"
    # a run planned with content that was replaced before its result arrived
    assert store.record_prediction("S", img, result(img, "Pre"), "m", "1", SHA_A, image_sha256="e" * 64) is True
    assert str(img) not in [p.path for p in store.predictions("S")]
    assert str(img) in store.pending_paths("S", SHA_A)
    assert store.record_prediction("S", img, result(img, "Pro"), "m", "1", SHA_A) is True
    assert store.predictions("S", SHA_A)[0].predicted_class == "Pro"


# ------------------------------------------------------------------------------- retries
def test_an_error_result_is_retried_until_one_is_ok(store, folder):
    img = folder / "img0.jpg"
    assert record(store, "S", img, status="error") is True
    assert str(img) in store.pending_paths("S", SHA_A)  # the latest result is an error
    assert record(store, "S", img, status="error") is True  # still failing: recorded again
    assert store.predictions("S", SHA_A)[0].status == "error"
    assert record(store, "S", img, "Pre") is True
    assert str(img) not in store.pending_paths("S", SHA_A)
    assert record(store, "S", img, "Pro") is False and record(store, "S", img, status="error") is False
    assert store.predictions("S", SHA_A)[0].predicted_class == "Pre"
    # another model's results are separate
    assert str(img) in store.pending_paths("S", SHA_B)
    assert sum(a == "record_prediction" for a in actions(store)) == 3


# ------------------------------------------------------------------------------- signed off
def test_a_signed_off_sample_is_never_changed_by_its_files(store, folder):
    for p in sorted(folder.iterdir()):
        record(store, "S", p)
    store.sign_off("S", "dr", "I approve this report.")
    img = folder / "img2.jpg"
    replace(img, b"swapped after the sign-off")
    before = (store.images("S"), actions(store))
    assert store.changed_images("S") == [str(img)]
    assert store.add_images("S", sorted(folder.iterdir())) == 0
    assert (store.images("S"), actions(store)) == before  # the stored hash stays the signed one
    assert [p.path for p in store.predictions("S")] == [str(p) for p in sorted(folder.iterdir())]
    with pytest.raises(SignOffError):
        store.add_images("S", [folder / "new.jpg"])
    (folder / "img0.jpg").unlink()
    assert store.changed_images("S") == [str(folder / "img0.jpg"), str(img)]

    store.reopen("S", "dr", "a file was replaced")
    store.add_images("S", [img])
    assert store.changed_images("S") == [str(folder / "img0.jpg")]  # img2 is now the new content
    assert str(img) in store.pending_paths("S", SHA_A)
    with pytest.raises(SignOffError, match="not been classified"):
        store.sign_off("S", "dr", "I approve this report.")


# ------------------------------------------------------------------------------- schema 3
def test_a_new_database_carries_the_application_id(tmp_path):
    ResultStore.open(tmp_path / "new.sqlite3").close()
    with closing(sqlite3.connect(tmp_path / "new.sqlite3")) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        columns = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
        assert {"sha256", "size", "mtime_ns"} <= columns


def test_an_empty_file_and_an_empty_sqlite_database_become_result_databases(tmp_path):
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.sqlite3"
    with closing(sqlite3.connect(blank)) as conn:
        conn.execute("VACUUM")  # a valid SQLite file without a single table
    assert blank.stat().st_size > 0
    for path in (empty, blank):
        with ResultStore.open(path) as store:
            store.create_or_get_sample("S", tmp_path)
            assert store.journal_mode == "wal"


def _write_schema_2_database(path: Path, folder: Path) -> list[Path]:
    """A database as ALLSight wrote it before schema 3: WAL, no application id, one prediction per
    image and model (an ok one, an error one), a review."""
    images = [folder / "a.jpg", folder / "b.jpg"]
    for p in images:
        p.write_bytes(p.name.encode())
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        assert migrate(conn, target=2) == 0
        conn.execute("INSERT INTO samples (sample_id, folder, operator, created_at, updated_at) "
                     "VALUES ('S', ?, 'op', 't0', 't0')", (str(folder),))
        for i, p in enumerate(images):
            conn.execute("INSERT INTO images (sample_pk, path, file_name, sha256, size, position, added_at) "
                         "VALUES (1, ?, ?, ?, ?, ?, 't0')", (str(p), p.name, sha(p.read_bytes()), p.stat().st_size, i))
        conn.execute("INSERT INTO predictions (image_pk, model_id, model_version, model_sha256, status, "
                     "predicted_class, confidence, needs_review, flags, created_at) "
                     "VALUES (1, 'tiny', '1', ?, 'ok', 'Pre', 0.6, 1, 'low_confidence', 't1')", (SHA_A,))
        conn.execute("INSERT INTO predictions (image_pk, model_id, model_version, model_sha256, status, error, "
                     "needs_review, created_at) VALUES (2, 'tiny', '1', ?, 'error', 'cannot decode', 1, 't1')",
                     (SHA_A,))
        conn.execute("INSERT INTO reviews (image_pk, reviewer, final_class, created_at) VALUES (1, 'dr', 'Early', 't2')")
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0
    return images


def test_a_schema_2_database_opens_migrates_and_retries_its_errors(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    path = tmp_path / "v2.sqlite3"
    a, b = _write_schema_2_database(path, folder)
    with ResultStore.open(path) as store:
        preds = store.predictions("S", SHA_A)
        assert [(p.status, p.predicted_class, p.final_class, p.reviewed_by) for p in preds] == [
            ("ok", "Pre", "Early", "dr"), ("error", None, None, None)]  # results and the review kept
        assert preds[0].image_sha256 == sha(b"a.jpg")
        assert store.pending_paths("S", SHA_A) == [str(b)]  # the error is retried...
        assert record(store, "S", b, "Pro") is True  # ...now that one model may have several rows
        assert record(store, "S", a, "Pro") is False  # the ok result stands
        store.add_images("S", [a, b])  # the first run fills in the files' mtimes, changing nothing else
        assert all(im.mtime_ns is not None for im in store.images("S"))
        assert not [x for x in actions(store) if x == "image_changed"]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT image_sha256 FROM reviews").fetchall() == [(sha(b"a.jpg"),)]
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 3
    with ResultStore.open(path) as store:  # opening again changes nothing
        assert [p.predicted_class for p in store.predictions("S", SHA_A)] == ["Pre", "Pro"]
