"""The result store against a careless or hostile user: a FIFO or a link to ``/dev/zero`` among the
images, files replaced or still being copied, and files that are not ALLSight databases given as
the database. Nothing may hang, read without end, serve a stale result or modify a foreign file.

Whatever could hang runs under a deadline (a daemon thread joined with a timeout, or a subprocess
timeout), so a regression fails instead of stopping the suite."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from engine.core.records import ImageResult, ImageStatus
from engine.store.results import MAX_HASHED_FILE_BYTES, ResultStore, StoreError, hash_file
from engine.workflow.classification import classify_samples, prepare_sample
from tests.conftest import synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]
SHA = "c" * 64
DEADLINE_S = 20.0

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_dev_zero = pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this platform")


def within(seconds: float, fn: Callable[[], Any], *, unblock: Path | None = None) -> Any:
    """``fn()``'s value, failing the test when it takes longer than ``seconds`` (it runs in a daemon
    thread; ``unblock``: a FIFO opened for writing afterwards so that a reader stuck on it returns)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc

    worker = threading.Thread(target=run, name="hostile-deadline", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if unblock is not None:
            with contextlib.suppress(OSError):  # a writer: the reader stuck on it sees EOF
                os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"did not finish within {seconds:.0f} s (blocked on a FIFO or reading without end?)")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def neighbours(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


@pytest.fixture
def sample(tmp_path) -> tuple[ResultStore, Path]:
    folder = tmp_path / "S-H"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"a real image")
    with ResultStore.open(tmp_path / "results.sqlite3") as store:
        store.create_or_get_sample("S-H", folder)
        yield store, folder


class FakeClassifier:
    """Calls every readable file "Pre" and reports anything else as an error."""

    def __init__(self) -> None:
        self.card = type("Card", (), {"id": "fake", "version": "1", "weights_sha256": SHA})()
        self.asked: list[str] = []

    def classify_paths(self, paths, *, batch_size=64, workers=2, cancel=None) -> Iterator[ImageResult]:
        for path in map(str, paths):
            self.asked.append(Path(path).name)
            if os.path.isfile(path) and os.path.getsize(path) > 4:
                yield ImageResult(path, ImageStatus.OK, "Pre", 0.9, {"Pre": 0.9})
            else:
                yield ImageResult(path, ImageStatus.ERROR, error="truncated or incomplete image data")


# ------------------------------------------------------------------------------- what is read
@needs_fifo
def test_a_fifo_among_the_images_is_recorded_without_a_hash_and_never_blocks(sample):
    store, folder = sample
    fifo = folder / "x.jpg"
    os.mkfifo(fifo)
    assert within(DEADLINE_S, lambda: hash_file(fifo), unblock=fifo) is None
    assert within(DEADLINE_S, lambda: store.add_images("S-H", [folder / "a.jpg", fifo]), unblock=fifo) == 2
    rec = {Path(r.path).name: r for r in store.images("S-H")}
    assert rec["x.jpg"].sha256 is None and rec["x.jpg"].size is None
    assert rec["a.jpg"].sha256 == hashlib.sha256(b"a real image").hexdigest()
    # the next run (the FIFO is looked at again, as a file without a hash) does not block either
    assert within(DEADLINE_S, lambda: store.add_images("S-H", [fifo]), unblock=fifo) == 0
    # a result for a FIFO not yet in the sample: record_prediction adds (and would hash) it
    other = folder / "y.jpg"
    os.mkfifo(other)
    error = ImageResult(str(other), ImageStatus.ERROR, error="not a regular file")
    assert within(DEADLINE_S, lambda: store.record_prediction("S-H", other, error, "m", "1", SHA), unblock=other)
    assert within(DEADLINE_S, lambda: store.changed_images("S-H"), unblock=fifo) == []


@needs_dev_zero
def test_a_link_to_dev_zero_is_not_read(sample):
    store, folder = sample
    link = folder / "zero.jpg"
    link.symlink_to("/dev/zero")
    assert within(DEADLINE_S, lambda: hash_file(link)) is None
    assert within(DEADLINE_S, lambda: store.add_images("S-H", [link])) == 1
    [rec] = store.images("S-H")
    assert rec.sha256 is None and rec.size is None


def test_a_huge_file_is_not_read(sample):
    store, folder = sample
    huge = folder / "huge.tif"
    with open(huge, "wb") as f:
        f.truncate(MAX_HASHED_FILE_BYTES + 1)  # sparse: costs no disk, would take seconds to read
    assert within(DEADLINE_S, lambda: hash_file(huge)) is None
    within(DEADLINE_S, lambda: store.add_images("S-H", [huge]))
    [rec] = store.images("S-H")
    assert rec.sha256 is None and rec.size == MAX_HASHED_FILE_BYTES + 1


# ------------------------------------------------------------------------------- stale results
def test_a_replaced_image_is_classified_again_and_an_error_is_retried(sample):
    store, folder = sample
    a, b = folder / "a.jpg", folder / "b.jpg"
    b.write_bytes(b"b")  # still being copied: too short to decode
    plan = prepare_sample(store, "S-H", [a, b], SHA)
    first = list(classify_samples(store, FakeClassifier(), [plan]))
    assert [e.failed for e in first] == [False, True]

    # The copy finishes, and a.jpg is replaced by another image of another size.
    b.write_bytes(b"b, complete now")
    a.write_bytes(b"a different smear altogether")
    classifier = FakeClassifier()
    plan = prepare_sample(store, "S-H", [a, b], SHA)
    assert plan.pending == (str(a), str(b)) and plan.stored == {}
    second = list(classify_samples(store, classifier, [plan]))
    assert classifier.asked == ["a.jpg", "b.jpg"] and all(e.recorded and not e.failed for e in second)
    current = {Path(r.path).name: r.image_sha256 for r in store.predictions("S-H", SHA)}
    assert current == {"a.jpg": hashlib.sha256(b"a different smear altogether").hexdigest(),
                       "b.jpg": hashlib.sha256(b"b, complete now").hexdigest()}
    assert prepare_sample(store, "S-H", [a, b], SHA).pending == ()  # and then it is done


# ------------------------------------------------------------------------------- foreign files
def _foreign_database(path: Path, *, wal: bool = False, application_id: int = 0,
                      tables: tuple[str, ...] = ("customers", "orders"), user_version: int = 0) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        for t in tables:
            conn.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT)")
            conn.execute(f"INSERT INTO {t} (name) VALUES ('keep me')")
        if application_id:
            conn.execute(f"PRAGMA application_id = {application_id}")
        if user_version:
            conn.execute(f"PRAGMA user_version = {user_version}")


@pytest.mark.parametrize("kind", ["rollback", "wal", "application-id", "lookalike"])
def test_another_applications_sqlite_file_is_refused_unchanged(tmp_path, kind):
    path = tmp_path / "their.db"
    if kind == "rollback":
        _foreign_database(path)
    elif kind == "wal":
        _foreign_database(path, wal=True)
    elif kind == "application-id":  # our table names, but another application's id
        _foreign_database(path, application_id=0x47504B47,
                          tables=("samples", "images", "predictions", "reviews", "audit_log"), user_version=2)
    else:  # one table of ours, no version: not ours
        _foreign_database(path, tables=("samples",))
    before, files = file_digest(path), neighbours(path)
    with pytest.raises(StoreError, match="not an ALLSight result database") as info:
        ResultStore.open(path)
    assert str(path) in str(info.value) and "left unchanged" in str(info.value)
    assert file_digest(path) == before
    assert neighbours(path) == files  # no -wal, -shm or -journal left behind
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == ("wal" if kind == "wal" else "delete")


def test_a_foreign_database_open_in_its_application_is_refused_unchanged(tmp_path):
    path = tmp_path / "busy.db"
    _foreign_database(path, wal=True)
    with closing(sqlite3.connect(path, isolation_level=None)) as theirs:  # keeps its -wal and -shm
        theirs.execute("INSERT INTO orders (name) VALUES ('in the wal only')")
        before = {name: file_digest(tmp_path / name) for name in neighbours(path)}
        assert {"busy.db-wal", "busy.db-shm"} <= set(before)
        with pytest.raises(StoreError, match="another SQLite database"):
            ResultStore.open(path)
        assert file_digest(path) == before["busy.db"] and file_digest(tmp_path / "busy.db-wal") == before["busy.db-wal"]
        assert theirs.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 2


def test_a_jpeg_given_as_the_database_is_refused_unchanged(tmp_path):
    jpeg = write_image(tmp_path / "cell.jpg", synthetic_smear(1, 40, 1), quality=90)
    before, files = file_digest(jpeg), neighbours(jpeg)
    with pytest.raises(StoreError, match="not an SQLite database file") as info:
        ResultStore.open(jpeg)
    assert str(jpeg) in str(info.value)
    assert file_digest(jpeg) == before and neighbours(jpeg) == files


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        ResultStore.open(tmp_path)


@needs_fifo
def test_a_fifo_given_as_the_database_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "db.sqlite3"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        within(DEADLINE_S, lambda: ResultStore.open(fifo), unblock=fifo)


# ------------------------------------------------------------------------------- through the CLI
def _classify(env: dict[str, str], *args: object) -> subprocess.CompletedProcess:
    # The timeout is the deadline: a run that blocks on the FIFO is killed and the test fails.
    proc = subprocess.run([sys.executable, "main.py", "classify", *map(str, args)], cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=240)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))}


@needs_fifo
def test_cli_classify_db_with_a_fifo_a_partial_copy_and_a_replaced_image(tmp_path, tiny_model):
    env = {**os.environ, "ALLSIGHT_DATA_DIR": str(tmp_path / "appdata"), "ALLSIGHT_LOG_DIR": str(tmp_path / "logs"),
           "QT_QPA_PLATFORM": "offscreen"}
    folder = tmp_path / "S-FIFO"
    cell0 = write_image(folder / "cell0.jpg", synthetic_smear(0, 40, 0), quality=92)
    write_image(folder / "cell1.jpg", synthetic_smear(1, 40, 1), quality=92)
    whole = write_image(tmp_path / "whole.jpg", synthetic_smear(2, 40, 2), quality=92).read_bytes()
    (folder / "copying.jpg").write_bytes(whole[: len(whole) // 2])  # a copy still in progress
    os.mkfifo(folder / "x.jpg")
    db, args = tmp_path / "results.sqlite3", ("--model", tiny_model, "--workers", "1")

    first = _classify(env, folder, "--db", db, "--out", tmp_path / "r1.csv", *args)
    assert first.returncode == 3, first.stderr
    rows = _rows(tmp_path / "r1.csv")
    assert rows["x.jpg"]["status"] == "error" and "not a regular file" in rows["x.jpg"]["error"]
    assert rows["copying.jpg"]["status"] == "error"
    assert rows["cell0.jpg"]["status"] == rows["cell1.jpg"]["status"] == "ok"

    # The copy completes and cell0.jpg is replaced by another smear: both are classified again,
    # the FIFO is retried (and fails again, at once), cell1.jpg is read back from the store.
    (folder / "copying.jpg").write_bytes(whole)
    old_cell0 = hashlib.sha256(cell0.read_bytes()).hexdigest()
    write_image(cell0, synthetic_smear(3, 48, 7), quality=80)
    second = _classify(env, folder, "--db", db, "--out", tmp_path / "r2.csv", "--json", tmp_path / "r2.json", *args)
    assert second.returncode == 3, second.stderr
    assert "4 image(s), 1 already in the result store, 3 to classify" in second.stderr
    rows = _rows(tmp_path / "r2.csv")
    assert rows["copying.jpg"]["status"] == "ok" and rows["x.jpg"]["status"] == "error"
    from_store = {Path(r["path"]).name: r["from_store"] for r in json.loads((tmp_path / "r2.json").read_text())["results"]}
    assert from_store == {"cell0.jpg": False, "cell1.jpg": True, "copying.jpg": False, "x.jpg": False}
    with ResultStore.open(db) as store:
        current = {Path(r.path).name: r for r in store.predictions("S-FIFO")}
        assert current["cell0.jpg"].image_sha256 == hashlib.sha256(cell0.read_bytes()).hexdigest() != old_cell0
        assert current["copying.jpg"].ok
        changed = [a for a in store.audit("S-FIFO") if a.action == "image_changed"]
        assert sorted(Path(a.path).name for a in changed) == ["cell0.jpg", "copying.jpg"]


def test_cli_refuses_a_foreign_database_unchanged(tmp_path, tiny_model):
    env = {**os.environ, "ALLSIGHT_DATA_DIR": str(tmp_path / "appdata"), "ALLSIGHT_LOG_DIR": str(tmp_path / "logs")}
    write_image(tmp_path / "in" / "cell0.jpg", synthetic_smear(0, 40, 0), quality=92)
    (tmp_path / "theirs").mkdir()
    theirs = tmp_path / "theirs" / "accounts.sqlite"
    _foreign_database(theirs, wal=True)
    before, files = file_digest(theirs), neighbours(theirs)
    proc = _classify(env, tmp_path / "in", "--db", theirs, "--model", tiny_model, "--out", tmp_path / "r.csv")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(theirs) in errors[0] and "not an ALLSight result database" in errors[0]
    assert file_digest(theirs) == before and neighbours(theirs) == files
