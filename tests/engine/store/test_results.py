"""The result history database: durability, idempotence, reviews, sign-off, audit, threads."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.core.errors import AllSightError
from engine.core.flags import FlagReason
from engine.store.errors import ReviewConflictError
from engine.store.results import (
    EXCLUDED_CLASS,
    SCHEMA_VERSION,
    ResultStore,
    SignOffError,
    StoreError,
    default_db_path,
    hash_file,
    migrate,
)
from tests.conftest import fake_image_files
from tests.engine.store.conftest import raw

REPO = Path(__file__).resolve().parents[3]
SHA_A = "a" * 64
SHA_B = "b" * 64


def result(path, cls="Pre", *, status="ok", needs_review=False, ood=False, confidence=0.9):
    if status != "ok":
        return SimpleNamespace(path=str(path), status="error", predicted_class=None, confidence=None,
                               probabilities=None, needs_review=True, out_of_distribution=False,
                               ood_score=None, error="cannot decode")
    probs = {c: 0.02 for c in ("Benign", "Early", "Pre", "Pro")}
    probs[cls] = confidence
    return SimpleNamespace(path=str(path), status="ok", predicted_class=cls, confidence=confidence,
                           probabilities=probs, needs_review=needs_review, out_of_distribution=ood,
                           ood_score=1.5, error=None)


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return fake_image_files(tmp_path / "patient1", 6)


@pytest.fixture
def store(store_target):
    with ResultStore.open(store_target) as s:
        yield s


def record(store, sample, path, cls="Pre", sha=SHA_A, **kw):
    return store.record_prediction(sample, path, result(path, cls, **kw), "tiny", "0.0.1", sha)


# ------------------------------------------------------------------------------- basics
def test_open_sets_wal_schema_and_foreign_keys(store):
    if store.dialect == "postgresql":
        with raw(store) as conn:
            tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                                 "WHERE table_schema = current_schema()")}
        assert {"samples", "images", "predictions", "reviews", "audit_log", "alembic_version"} <= tables
        return
    assert store.journal_mode == "wal"
    with closing(sqlite3.connect(store.path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"samples", "images", "predictions", "reviews", "audit_log"} <= tables
    assert issubclass(StoreError, AllSightError) and issubclass(SignOffError, StoreError)


def test_default_db_path_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLSIGHT_DATA_DIR", str(tmp_path / "data"))
    assert default_db_path() == tmp_path / "data" / "allsight.sqlite3"
    monkeypatch.delenv("ALLSIGHT_DATA_DIR")
    assert default_db_path().name == "allsight.sqlite3"
    assert "ALLSight" in str(default_db_path())


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "x.sqlite3"
    ResultStore.open(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer ALLSight"):
        ResultStore.open(path)


def test_not_a_database_is_a_store_error(tmp_path):
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.sqlite3"):
        ResultStore.open(path)


def test_closed_store_refuses_calls(tmp_path):
    s = ResultStore.open(tmp_path / "c.sqlite3")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.list_samples()


def test_hash_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc" * 1_000_000)
    assert hash_file(p) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
    assert hash_file(tmp_path / "missing.bin") is None


# ------------------------------------------------------------------------------- samples/images
def test_samples_create_get_list_and_rename(store, images):
    s1 = store.create_or_get_sample("S1", images[0].parent, patient_id="P-7", operator="ann")
    assert (s1.sample_id, s1.patient_id, s1.operator, s1.signed_off) == ("S1", "P-7", "ann", False)
    again = store.create_or_get_sample("S1", "/elsewhere", patient_id="other")
    assert again.patient_id == "P-7" and again.folder == s1.folder
    store.create_or_get_sample("S2", images[0].parent)
    assert [s.sample_id for s in store.list_samples()] == ["S2", "S1"]
    assert store.get_sample("nope") is None

    store.add_images("S1", images[:2])
    renamed = store.update_sample("S1", new_sample_id="S1-renamed", patient_id="P-8", actor="ann")
    assert renamed.sample_id == "S1-renamed" and renamed.patient_id == "P-8" and renamed.n_images == 2
    assert store.get_sample("S1") is None
    assert len(store.images("S1-renamed")) == 2
    with pytest.raises(StoreError, match="already exists"):
        store.update_sample("S1-renamed", new_sample_id="S2", actor="ann")
    with pytest.raises(StoreError):
        store.update_sample("S2", patient_id="x", actor="")
    # the audit history follows the rename
    actions = [a.action for a in store.audit("S1-renamed")]
    assert actions == ["create_sample", "add_images", "update_sample"]
    change = store.audit("S1-renamed")[-1]
    assert change.details["changes"]["sample_id"] == ["S1", "S1-renamed"] and change.actor == "ann"


def test_add_images_is_idempotent_and_keeps_order(store, images, tmp_path):
    store.create_or_get_sample("S", images[0].parent)
    missing = tmp_path / "gone.jpg"
    assert store.add_images("S", [images[2], images[0], images[2], missing]) == 3
    assert store.add_images("S", [images[0], images[1], images[2]]) == 1
    assert store.add_images("S", images[:3]) == 0
    recs = store.images("S")
    assert [Path(r.path).name for r in recs] == ["img02.jpg", "img00.jpg", "gone.jpg", "img01.jpg"]
    assert [r.position for r in recs] == [0, 1, 2, 3]
    assert recs[0].sha256 == hashlib.sha256(b"fake image 2").hexdigest()
    assert recs[0].size == len(b"fake image 2") and recs[0].file_name == "img02.jpg"
    assert recs[2].sha256 is None and recs[2].size is None
    assert [a.details["count"] for a in store.audit("S") if a.action == "add_images"] == [3, 1]
    with pytest.raises(StoreError, match="no sample"):
        store.add_images("unknown", images)


# ------------------------------------------------------------------------------- predictions
def test_record_prediction_is_idempotent_per_model(store, images):
    store.create_or_get_sample("S", images[0].parent)
    store.add_images("S", images[:3])
    assert record(store, "S", images[0], "Pre") is True
    assert record(store, "S", images[0], "Pro") is False  # same model sha: skipped, unchanged
    assert store.pending_paths("S", SHA_A) == [str(images[1]), str(images[2])]
    preds = store.predictions("S")
    assert len(preds) == 1 and preds[0].predicted_class == "Pre"
    assert preds[0].probabilities["Pre"] == pytest.approx(0.9) and preds[0].model_id == "tiny"
    # another model: a second prediction beside the first
    assert record(store, "S", images[0], "Early", sha=SHA_B) is True
    assert store.predictions("S")[0].predicted_class == "Early"  # latest by default
    assert store.predictions("S", SHA_A)[0].predicted_class == "Pre"
    assert store.pending_paths("S", SHA_B) == [str(images[1]), str(images[2])]
    # an image not added yet is added at the end
    assert record(store, "S", images[4], "Benign") is True
    assert Path(store.images("S")[-1].path) == images[4]
    assert sum(a.action == "record_prediction" for a in store.audit("S")) == 3


def test_error_results_and_bad_results(store, images):
    store.create_or_get_sample("S", images[0].parent)
    record(store, "S", images[0], status="error")
    rec = store.predictions("S")[0]
    assert rec.status == "error" and rec.error == "cannot decode" and rec.flagged and rec.predicted_class is None
    with pytest.raises(StoreError, match="unknown predicted class"):
        store.record_prediction("S", images[1], result(images[1], "Weird"), "m", "1", SHA_A)
    with pytest.raises(StoreError):
        store.record_prediction("S", images[1], result(images[1]), "m", "1", "")


def test_relative_paths_match_absolute(store, images, monkeypatch):
    monkeypatch.chdir(images[0].parent)
    store.create_or_get_sample("S", ".")
    store.add_images("S", ["img00.jpg"])
    assert record(store, "S", images[0]) is True
    assert store.pending_paths("S", SHA_A) == []


# ------------------------------------------------------------------------------- flags
def test_flag_codes_round_trip_through_the_store(store, images):
    from engine.core.records import ImageResult

    store.create_or_get_sample("S", images[0].parent)
    flags = (FlagReason.UNLIKE_TRAINING, FlagReason.NO_WHITE_CELL, FlagReason.LOW_CONFIDENCE)
    r = ImageResult(str(images[0]), "ok", "Pro", 0.4, {"Benign": 0.2, "Early": 0.2, "Pre": 0.2, "Pro": 0.4},
                    needs_review=True, out_of_distribution=True, ood_score=412.3, flags=flags)
    store.record_prediction("S", images[0], r, "m", "1", SHA_A)
    store.record_prediction("S", images[1], ImageResult(str(images[1]), "ok", "Pre", 0.99), "m", "1", SHA_A)
    first, second = store.predictions("S")
    assert first.flags == (FlagReason.NO_WHITE_CELL, FlagReason.UNLIKE_TRAINING, FlagReason.LOW_CONFIDENCE)
    assert all(isinstance(f, FlagReason) for f in first.flags) and second.flags == ()
    assert first.ood_score == pytest.approx(412.3)
    assert first.ood_reason == f"{FlagReason.NO_WHITE_CELL.sentence}. {FlagReason.UNLIKE_TRAINING.sentence}."
    with raw(store) as conn:
        stored = conn.execute("SELECT flags FROM predictions ORDER BY pk").fetchall()
    assert stored == [("no_white_cell;unlike_training;low_confidence",), ("",)]
    # a result without codes (an older caller) gets them from its flags and free text
    record(store, "S", images[2], "Pre", needs_review=True)
    assert store.predictions("S")[2].flags == (FlagReason.LOW_CONFIDENCE,)
    with pytest.raises(StoreError, match="sparkles"):
        store.record_prediction("S", images[3], SimpleNamespace(**{**vars(result(images[3])), "flags": ("sparkles",)}),
                                "m", "1", SHA_A)


def _write_schema_1_database(path: Path, folder: Path, rows) -> None:
    """A database as ALLSight wrote it before reason codes (schema 1, free-text ood_reason)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert migrate(conn, target=1) == 0
        conn.execute("INSERT INTO samples (sample_id, folder, operator, created_at, updated_at) "
                     "VALUES ('S', ?, 'op', 't0', 't0')", (str(folder),))
        for i, (status, cls, needs_review, ood, reason) in enumerate(rows):
            image = folder / f"old{i:02d}.jpg"
            conn.execute("INSERT INTO images (sample_pk, path, file_name, position, added_at) VALUES (1, ?, ?, ?, 't0')",
                         (str(image), image.name, i))
            conn.execute(
                "INSERT INTO predictions (image_pk, model_id, model_version, model_sha256, status, predicted_class, "
                "confidence, probabilities, needs_review, out_of_distribution, ood_score, ood_reason, error, created_at) "
                "VALUES (?, 'tiny', '0.0.1', ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, 't1')",
                (i + 1, SHA_A, status, cls, 0.9 if cls else None, needs_review, ood, 400.0 if ood else 10.0, reason,
                 "cannot decode" if status == "error" else None))
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_schema_1_database_opens_and_gets_codes_from_the_old_texts(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    path = tmp_path / "old.sqlite3"
    rows = [  # (status, class, needs_review, out_of_distribution, ood_reason) -> expected codes
        ("ok", "Pre", 1, 1, "feature distance 412.3 above 333.7"),
        ("ok", "Pre", 1, 1, "near-blank image; grayscale image (no stain colour)"),
        ("ok", "Pro", 1, 1, "out of focus (sharpness 12, in-focus smears 35 or more)"),
        ("ok", "Pro", 1, 1, "feature distance 500.0 above 333.7; out of focus (sharpness 20, in-focus)"),
        ("ok", "Early", 1, 0, ""),
        ("ok", "Benign", 0, 0, ""),
        ("ok", "Benign", 1, 1, ""),  # out of distribution, reason not recorded
        ("error", None, 1, 0, ""),
    ]
    expected = [
        (FlagReason.UNLIKE_TRAINING,),
        (FlagReason.BLANK, FlagReason.GRAYSCALE),
        (FlagReason.OUT_OF_FOCUS,),
        (FlagReason.OUT_OF_FOCUS, FlagReason.UNLIKE_TRAINING),
        (FlagReason.LOW_CONFIDENCE,),
        (),
        (FlagReason.UNLIKE_TRAINING,),
        (),
    ]
    _write_schema_1_database(path, folder, rows)
    with ResultStore.open(path) as store:
        preds = store.predictions("S")
        assert [p.flags for p in preds] == expected
        # everything else is as it was
        assert [p.predicted_class for p in preds] == [r[1] for r in rows]
        assert [p.out_of_distribution for p in preds] == [bool(r[3]) for r in rows]
        assert preds[0].ood_score == pytest.approx(400.0) and preds[-1].error == "cannot decode"
        # and the migrated database is fully usable
        store.record_review("S", preds[0].path, "Pre", "dr")
        extra = folder / "new.jpg"
        extra.write_bytes(b"new")
        from engine.core.records import ImageResult

        store.record_prediction("S", extra, ImageResult(str(extra), "ok", "Pre", 0.95,
                                                        flags=(FlagReason.NO_WHITE_CELL,)), "m", "1", SHA_A)
        assert store.predictions("S")[-1].flags == (FlagReason.NO_WHITE_CELL,)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        columns = {r[1] for r in conn.execute("PRAGMA table_info(predictions)")}
        assert {"flags", "ood_reason"} <= columns
    with ResultStore.open(path) as store:  # opening again changes nothing
        assert [p.flags for p in store.predictions("S")][:len(expected)] == expected


def test_unknown_stored_code_is_a_store_error(store, images):
    store.create_or_get_sample("S", images[0].parent)
    record(store, "S", images[0])
    with raw(store, write=True) as conn:
        conn.execute("UPDATE predictions SET flags = 'sparkles'")
    with pytest.raises(StoreError, match="sparkles"):
        store.predictions("S")


# ------------------------------------------------------------------------------- reviews
def test_review_is_kept_beside_the_prediction(store, images):
    store.create_or_get_sample("S", images[0].parent)
    record(store, "S", images[0], "Pre", needs_review=True)
    record(store, "S", images[1], "Pro")
    store.record_review("S", images[0], "Early", "dr_b", note="looks early")
    store.record_review("S", images[1], "Pro", "dr_b")
    p0, p1 = store.predictions("S")
    assert p0.predicted_class == "Pre" and p0.final_class == "Early" and p0.overridden
    assert p0.reviewed_by == "dr_b" and p0.reviewed_at and p0.review_note == "looks early"
    assert p1.final_class == "Pro" and not p1.overridden and p1.reviewed
    # a later review replaces the current one, the history stays
    store.record_review("S", images[0], "Pre", "dr_c")
    p0 = store.predictions("S")[0]
    assert (p0.final_class, p0.reviewed_by, p0.overridden, p0.predicted_class) == ("Pre", "dr_c", False, "Pre")
    with raw(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 3
        assert conn.execute("SELECT predicted_class FROM predictions ORDER BY pk").fetchall() == [("Pre",), ("Pro",)]
    reviews = [a for a in store.audit("S") if a.action == "record_review"]
    assert [a.actor for a in reviews] == ["dr_b", "dr_b", "dr_c"]
    assert reviews[0].details["overridden"] is True and reviews[0].path == str(images[0])


def test_a_review_can_be_withdrawn_and_the_withdrawal_is_history(store, images):
    store.create_or_get_sample("S", images[0].parent)
    record(store, "S", images[0], "Pre", needs_review=True)
    store.record_review("S", images[0], "Early", "dr_b")
    store.record_review("S", images[0], None, "dr_c", note="clicked the wrong class")
    p0 = store.predictions("S")[0]
    assert not p0.reviewed and p0.final_class is None and p0.reviewed_by is None and p0.to_review
    with raw(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 2  # nothing deleted
    withdrawn = [a for a in store.audit("S") if a.action == "withdraw_review"]
    assert [(a.actor, a.details["note"]) for a in withdrawn] == [("dr_c", "clicked the wrong class")]
    with pytest.raises(SignOffError):  # flagged and not reviewed again: blocks the sign-off
        store.sign_off("S", "dr_c", "I approve this report.")
    store.record_review("S", images[0], "Pre", "dr_c")
    assert store.predictions("S")[0].final_class == "Pre"


def test_review_validation(store, images):
    store.create_or_get_sample("S", images[0].parent)
    record(store, "S", images[0])
    with pytest.raises(StoreError, match="unknown class"):
        store.record_review("S", images[0], "Malignant", "dr")
    with pytest.raises(StoreError, match="not an image"):
        store.record_review("S", images[5], "Pre", "dr")
    with pytest.raises(StoreError, match="reviewer"):
        store.record_review("S", images[0], "Pre", "  ")
    store.record_review("S", images[0], EXCLUDED_CLASS, "dr")
    assert store.predictions("S")[0].final_class == EXCLUDED_CLASS


# ------------------------------------------------------------------------------- sign-off
def test_sign_off_requires_reviews_and_freezes_the_sample(store, images):
    store.create_or_get_sample("S", images[0].parent, operator="op")
    store.add_images("S", images[:4])
    record(store, "S", images[0], "Pre")
    record(store, "S", images[1], "Pre", needs_review=True)
    record(store, "S", images[2], "Pro", ood=True)
    with pytest.raises(SignOffError) as info:
        store.sign_off("S", "dr_b", "I approve this report.")
    assert info.value.n_unreviewed == 2 and info.value.n_pending == 1
    assert "2 flagged image(s)" in str(info.value) and "1 image(s) have not been classified" in str(info.value)

    record(store, "S", images[3], status="error")
    store.record_review("S", images[1], "Pre", "dr_b")
    store.record_review("S", images[2], EXCLUDED_CLASS, "dr_b")
    with pytest.raises(SignOffError, match="1 flagged") as info:
        store.sign_off("S", "dr_b", "I approve this report.")
    assert info.value.n_unreviewed == 1 and info.value.n_pending == 0
    store.record_review("S", images[3], EXCLUDED_CLASS, "dr_b", note="unreadable")

    signed = store.sign_off("S", "dr_b", "I approve this report.")
    assert signed.signed_off and signed.signed_off_by == "dr_b" and signed.signed_off_at
    entry = store.audit("S")[-1]
    assert entry.action == "sign_off" and entry.actor == "dr_b"
    assert entry.details["call_code"] == "ALL_PRE"

    with pytest.raises(SignOffError, match="reopen"):
        store.record_review("S", images[0], "Pro", "dr_b")
    with pytest.raises(SignOffError):
        store.update_sample("S", patient_id="x", actor="dr_b")
    with pytest.raises(SignOffError):
        record(store, "S", images[0], sha=SHA_B)
    with pytest.raises(SignOffError, match="already signed off"):
        store.sign_off("S", "dr_c", "I approve this report.")
    assert record(store, "S", images[0]) is False  # re-running the same model stays a harmless no-op

    with pytest.raises(StoreError, match="reason"):
        store.reopen("S", "dr_c", "")
    reopened = store.reopen("S", "dr_c", "second opinion")
    assert not reopened.signed_off and reopened.signed_off_by is None
    store.record_review("S", images[0], "Pro", "dr_c")
    assert store.audit("S")[-2].details["reason"] == "second opinion"
    with pytest.raises(StoreError, match="not signed off"):
        store.reopen("S", "dr_c", "again")


def test_sign_off_refuses_empty_sample(store, images):
    store.create_or_get_sample("S", images[0].parent)
    with pytest.raises(SignOffError, match="no images"):
        store.sign_off("S", "dr", "I approve this report.")


def test_every_action_is_audited(store, images):
    store.create_or_get_sample("S", images[0].parent, operator="op")
    store.add_images("S", images[:2])
    record(store, "S", images[0], needs_review=True)
    record(store, "S", images[1])
    store.record_review("S", images[0], "Pro", "dr")
    store.update_sample("S", patient_id="P1", actor="op")
    store.sign_off("S", "dr", "I approve this report.")
    store.reopen("S", "dr", "typo")
    log = store.audit("S")
    assert [a.action for a in log] == ["create_sample", "add_images", "record_prediction", "record_prediction",
                                       "record_review", "update_sample", "sign_off", "reopen"]
    assert all(a.sample_id == "S" and a.ts for a in log)
    assert [a.actor for a in log][:4] == ["op"] * 4
    assert len(store.audit()) == len(log)


# ------------------------------------------------------------------------------- concurrency
def test_concurrent_writers_and_a_reader(store, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    paths = [folder / f"{i:03d}.jpg" for i in range(40)]
    for p in paths:
        p.write_bytes(p.name.encode())
    store.create_or_get_sample("S", folder)
    store.add_images("S", paths)
    errors: list[BaseException] = []

    def writer(chunk):
        try:
            for p in chunk:
                record(store, "S", p, "Early")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(paths[k::2],), name=f"writer{k}") for k in range(2)]
    for t in threads:
        t.start()
    seen = []
    while any(t.is_alive() for t in threads):
        seen.append(len(store.predictions("S")))
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert seen == sorted(seen)  # the reader only ever sees whole commits, growing
    assert len(store.predictions("S")) == 40 and store.pending_paths("S", SHA_A) == []
    if store.dialect == "sqlite":
        with closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_stores_on_one_database(store_target, images):
    with ResultStore.open(store_target) as a, ResultStore.open(store_target) as b:
        a.create_or_get_sample("S", images[0].parent)
        record(a, "S", images[0])
        assert [p.path for p in b.predictions("S")] == [str(images[0])]


# ------------------------------------------------------------------------------- crash safety
CHILD = textwrap.dedent("""
    import sys, time
    from types import SimpleNamespace
    from engine.store.results import ResultStore
    db, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    paths = [f"{folder}/{i:03d}.jpg" for i in range(n)]
    store = ResultStore.open(db)
    store.create_or_get_sample("S", folder)
    store.add_images("S", paths)
    print("ready", flush=True)
    for p in paths:
        r = SimpleNamespace(status="ok", predicted_class="Pre", confidence=0.8,
                            probabilities={"Benign": 0.1, "Early": 0.05, "Pre": 0.8, "Pro": 0.05},
                            needs_review=False, out_of_distribution=False, ood_score=1.0, error=None)
        print("begin", p, flush=True)
        store.record_prediction("S", p, r, "tiny", "1", "c" * 64)
        print("done", p, flush=True)
        time.sleep(0.01)
    print("finished", flush=True)
""")


def test_predictions_survive_sigkill(tmp_path, store_target):
    folder = tmp_path / "imgs"
    folder.mkdir()
    n = 60
    for i in range(n):
        (folder / f"{i:03d}.jpg").write_bytes(b"x%d" % i)
    db = store_target  # a file, or a lab database: the killed process leaves nothing half-written
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(folder), str(n)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.split())
            if sum(1 for w in lines if w[0] == "done") >= 8:
                proc.kill()  # SIGKILL on POSIX: no cleanup, no atexit, mid-way through the run
                break
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines += [w.split() for w in rest.splitlines() if w.strip()]
    assert ["finished"] not in lines, "the child finished before it was killed"
    assert proc.returncode != 0, err
    done = [w[1] for w in lines if w[0] == "done"]
    begun = [w[1] for w in lines if w[0] == "begin"]
    all_paths = [os.path.abspath(f"{folder}/{i:03d}.jpg") for i in range(n)]

    with ResultStore.open(db) as store:
        stored = [p.path for p in store.predictions("S")]
        pending = store.pending_paths("S", "c" * 64)
        assert store.journal_mode in ("wal", "postgresql")
    # everything reported committed is there; at most the one in flight may also have landed
    assert set(map(os.path.abspath, done)) <= set(stored)
    assert set(stored) <= set(map(os.path.abspath, begun))
    assert len(stored) >= 8 and len(stored) < n
    assert stored == all_paths[:len(stored)]
    assert pending == all_paths[len(stored):]
    if store.dialect == "sqlite":
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_file_name_that_is_not_utf8_is_refused_with_a_clear_error(tmp_path):
    import os

    from engine.store.errors import StoreError

    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")
    odd.write_bytes(b"x")
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        store.create_or_get_sample("S-1", tmp_path)
        with pytest.raises(StoreError, match="not valid UTF-8.*caf\\\\xe9.jpg.*rename"):
            store.add_images("S-1", [odd])
        assert store.images("S-1") == []


def test_a_review_changed_on_another_workstation_is_never_silently_overwritten(store_target, images):
    with ResultStore.open(store_target) as desk_a, ResultStore.open(store_target) as desk_b:
        desk_a.create_or_get_sample("S", images[0].parent)
        record(desk_a, "S", images[0], "Pre", needs_review=True)
        shown_to_b = desk_b.predictions("S")[0].reviewed_at  # B opens the image: not reviewed
        when_a = desk_a.record_review("S", images[0], "Early", "dr_a", seen=None)
        with pytest.raises(ReviewConflictError, match="dr_a reviewed it as Early") as conflict:
            desk_b.record_review("S", images[0], "Pro", "dr_b", seen=shown_to_b)
        assert (conflict.value.current_class, conflict.value.changed_by, conflict.value.changed_at) == (
            "Early", "dr_a", when_a)
        assert desk_b.predictions("S")[0].final_class == "Early"  # nothing overwritten
        # having seen A's review, B may change it
        desk_b.record_review("S", images[0], "Pro", "dr_b", seen=desk_b.predictions("S")[0].reviewed_at)
        assert desk_a.predictions("S")[0].final_class == "Pro"
