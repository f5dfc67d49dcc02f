"""``python main.py classify --db/--report``: recording into the result store, resuming, and PDF
sample reports, run as a subprocess with a tiny model."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.core.flags import FlagReason
from engine.core.records import EXCLUDED_CLASS
from engine.store.results import ResultStore
from tests.conftest import synthetic_field_without_white_cell, synthetic_smear, write_image

pypdf = pytest.importorskip("pypdf")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    data, logs = tmp_path / "appdata", tmp_path / "logs"
    return {**os.environ, "ALLSIGHT_DATA_DIR": str(data), "ALLSIGHT_LOG_DIR": str(logs),
            "QT_QPA_PLATFORM": "offscreen"}


def classify(env: dict[str, str], *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "main.py", "classify", *map(str, args)], cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(str(path)).pages)


def model_sha(model: Path) -> str:
    return json.loads(model.with_suffix(".json").read_text())["weights"]["sha256"]


def smears(folder: Path, n: int, start: int = 0) -> list[Path]:
    return [write_image(folder / f"cell{i}.jpg", synthetic_smear(i % 4, 40, i), quality=92)
            for i in range(start, start + n)]


def recorded(store: ResultStore, sample_id: str) -> list[str]:
    """Paths of the sample's record_prediction audit rows, oldest first."""
    return [a.path for a in store.audit(sample_id) if a.action == "record_prediction"]


# ------------------------------------------------------------------------------------ --db
def test_db_records_every_image_and_rerun_is_a_no_op(tmp_path, tiny_model, env):
    folder = tmp_path / "S-001"
    images = smears(folder, 3)
    (folder / "broken.jpg").write_text("not an image at all")
    db = tmp_path / "db" / "results.sqlite3"
    first = classify(env, folder, "--model", tiny_model, "--db", db, "--out", tmp_path / "r1.csv",
                     "--json", tmp_path / "r1.json", "--batch-size", "2", "--workers", "1")
    assert first.returncode == 3, first.stderr  # the broken file
    rows1 = rows_of(tmp_path / "r1.csv")
    assert [Path(r["path"]).name for r in rows1] == ["broken.jpg", "cell0.jpg", "cell1.jpg", "cell2.jpg"]

    sha = model_sha(tiny_model)
    with ResultStore.open(db) as store:
        sample = store.get_sample("S-001")
        assert sample is not None and sample.n_images == 4 and not sample.signed_off
        preds = {Path(p.path).name: p for p in store.predictions("S-001", sha)}
        assert set(preds) == {"broken.jpg", *(p.name for p in images)}
        assert preds["broken.jpg"].status == "error" and "not an image" in preds["broken.jpg"].error
        for p in images:
            r = preds[p.name]
            assert r.status == "ok" and r.model_id == "tiny" and r.model_version == "0.0.1"
            row = next(row for row in rows1 if row["path"] == str(p))
            assert row["predicted_class"] == r.predicted_class
            assert row["confidence"] == f"{r.confidence:.6f}"
        assert store.pending_paths("S-001", sha) == [str(folder / "broken.jpg")]  # an error is retried
        assert len(recorded(store, "S-001")) == 4
        audit_before = len(store.audit())

    second = classify(env, folder, "--model", tiny_model, "--db", db, "--out", tmp_path / "r2.csv",
                      "--json", tmp_path / "r2.json")
    assert second.returncode == 3, second.stderr
    # Only the error result is retried (the file may have been incomplete); the ok ones are reused.
    assert "1 new result(s) recorded, 3 already there" in second.stdout
    with ResultStore.open(db) as store:
        new_rows = store.audit()[audit_before:]
        assert [(a.action, Path(a.path).name) for a in new_rows] == [("record_prediction", "broken.jpg")]
        assert len(store.predictions("S-001", sha)) == 4
    assert (tmp_path / "r2.csv").read_text() == (tmp_path / "r1.csv").read_text()
    doc1, doc2 = (json.loads((tmp_path / f"r{i}.json").read_text()) for i in (1, 2))
    assert doc1["summary"] == doc2["summary"]
    def strip(recs):
        return [{k: v for k, v in r.items() if k != "from_store"} for r in recs]
    assert strip(doc1["results"]) == strip(doc2["results"])
    assert [r["from_store"] for r in doc2["results"]] == [False, True, True, True]  # broken.jpg: retried
    assert {r["sample_id"] for r in doc2["results"]} == {"S-001"}


def test_flag_codes_survive_the_store_and_reach_the_report(tmp_path, tiny_model, env):
    folder = tmp_path / "S-FLAG"
    smears(folder, 2)
    write_image(folder / "nocell.png", synthetic_field_without_white_cell(40, 1))
    db = tmp_path / "flags.sqlite3"
    args = ("--model", tiny_model, "--db", db, "--workers", "1")
    first = classify(env, folder, *args, "--out", tmp_path / "r1.csv")
    assert first.returncode == 0, first.stderr
    with ResultStore.open(db) as store:
        preds = {Path(p.path).name: p for p in store.predictions("S-FLAG")}
    assert preds["nocell.png"].flags[0] is FlagReason.NO_WHITE_CELL and preds["nocell.png"].out_of_distribution
    # read back from the store (nothing reclassified): the same codes in the CSV, and the report
    second = classify(env, folder, *args, "--out", tmp_path / "r2.csv", "--report", tmp_path / "s.pdf")
    assert second.returncode == 0 and "0 new result(s) recorded, 3 already there" in second.stdout
    assert (tmp_path / "r2.csv").read_text() == (tmp_path / "r1.csv").read_text()
    flags = {Path(r["path"]).name: r["flags"] for r in rows_of(tmp_path / "r2.csv")}
    assert flags["nocell.png"].startswith("no_white_cell")
    text = " ".join(pdf_text(tmp_path / "s.pdf").split())
    assert FlagReason.NO_WHITE_CELL.sentence in text and "not counted" in text


def test_interrupted_run_classifies_only_the_pending_images(tmp_path, tiny_model, env):
    folder = tmp_path / "S-002"
    images = smears(folder, 4)
    sha = model_sha(tiny_model)
    # An interrupted earlier run: all images known, only the first two classified (with values
    # the tiny model would never produce, so the CSV shows they were read back, not recomputed).
    fake = SimpleNamespace(status="ok", predicted_class="Pro", confidence=0.7, needs_review=False,
                           probabilities={"Benign": 0.1, "Early": 0.1, "Pre": 0.1, "Pro": 0.7},
                           out_of_distribution=False, ood_score=None, error=None)
    db = Path(env["ALLSIGHT_DATA_DIR"]) / "allsight.sqlite3"  # what --db default means here
    with ResultStore.open(db) as store:
        store.create_or_get_sample("S-002", folder)
        store.add_images("S-002", images)
        for p in images[:2]:
            assert store.record_prediction("S-002", p, fake, "tiny", "0.0.1", sha)

    proc = classify(env, folder, "--model", tiny_model, "--db", "default", "--out", tmp_path / "r.csv")
    assert proc.returncode == 0, proc.stderr
    assert "2 already in the result store, 2 to classify" in proc.stderr
    rows = rows_of(tmp_path / "r.csv")
    assert [r["path"] for r in rows] == [str(p) for p in images]  # each once, in scan order
    assert [r["predicted_class"] for r in rows[:2]] == ["Pro", "Pro"]
    assert [r["confidence"] for r in rows[:2]] == ["0.700000", "0.700000"]
    assert rows[0]["prob_Pro"] == "0.700000" and rows[0]["needs_review"] == "false"
    with ResultStore.open(db) as store:
        assert recorded(store, "S-002") == [str(p) for p in images]  # 2 by the API, 2 by the run
        assert store.pending_paths("S-002", sha) == []

    # More images arrive in the folder: only they are classified.
    new = smears(folder, 2, start=4)
    proc = classify(env, folder, "--model", tiny_model, "--db", "default", "--out", tmp_path / "r2.csv")
    assert proc.returncode == 0, proc.stderr
    rows2 = rows_of(tmp_path / "r2.csv")
    assert [r["path"] for r in rows2] == [str(p) for p in images + new]
    assert rows2[:4] == rows
    with ResultStore.open(db) as store:
        assert recorded(store, "S-002") == [str(p) for p in images + new]
        assert [Path(i.path).name for i in store.images("S-002")] == [p.name for p in images + new]


def test_signed_off_sample_is_not_modified(tmp_path, tiny_model, env):
    folder = tmp_path / "S-009"
    smears(folder, 2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    db = tmp_path / "results.sqlite3"
    first = classify(env, folder, "--model", tiny_model, "--db", db, "--out", tmp_path / "r1.csv")
    assert first.returncode == 3, first.stderr
    sha = model_sha(tiny_model)
    with ResultStore.open(db) as store:
        for r in store.predictions("S-009", sha):
            if r.flagged:
                store.record_review("S-009", r.path, r.predicted_class if r.ok else EXCLUDED_CLASS, "Dr. Sign")
        store.sign_off("S-009", "Dr. Sign", "I approve this report.")
        audit_before = len(store.audit())

    write_image(folder / "late.png", synthetic_smear(1, 40, 99))
    second = classify(env, folder, "--model", tiny_model, "--db", db, "--out", tmp_path / "r2.csv",
                      "--report", tmp_path / "s.pdf")
    assert second.returncode == 3, second.stderr
    assert "S-009: signed off by Dr. Sign" in second.stderr
    with ResultStore.open(db) as store:
        added = store.audit()[audit_before:]  # nothing but the report written, which is recorded
        assert [(e.action, e.sample_id, e.details["kind"]) for e in added] == [("export", "S-009", "pdf")]
        assert store.get_sample("S-009").n_images == 3
    rows1, rows2 = rows_of(tmp_path / "r1.csv"), rows_of(tmp_path / "r2.csv")
    by_name = {Path(r["path"]).name: r for r in rows2}
    assert set(by_name) == {"broken.jpg", "cell0.jpg", "cell1.jpg", "late.png"}
    assert [r for r in rows2 if not r["path"].endswith("late.png")] == rows1
    assert by_name["late.png"]["status"] == "error" and "signed off" in by_name["late.png"]["error"]
    text = pdf_text(tmp_path / "s.pdf")
    assert "S-009" in text and "Dr. Sign" in text and "final (signed off)" in text
    assert "excluded by Dr. Sign" in text  # the broken image: a failed row with the reviewer's verdict
    assert "late.png" not in text  # the report is the signed-off sample


# ------------------------------------------------------------------------------------ --report
def test_report_without_db_covers_every_image(tmp_path, tiny_model, env):
    folder = tmp_path / "S-042"
    smears(folder, 2)
    (folder / "text.jpg").write_text("not an image")
    out = tmp_path / "out" / "report.pdf"  # a missing folder is created
    proc = classify(env, folder, "--model", tiny_model, "--report", out, "--operator", "J. Operator",
                    "--lab-name", "Haematology Lab", "--out", tmp_path / "r.csv")
    assert proc.returncode == 3, proc.stderr
    assert f"report: {out}" in proc.stdout
    text = pdf_text(out)
    for needle in ("S-042", "cell0.jpg", "cell1.jpg", "text.jpg", "not an image", "Research use only",
                   "J. Operator", "Haematology Lab", "Unreadable"):
        assert needle in text, needle
    assert "Grad-CAM" in text  # the column is there, without --heatmaps it is empty
    assert not (Path(env["ALLSIGHT_DATA_DIR"]) / "allsight.sqlite3").exists()  # no store without --db

    # Loose files from two folders: one report named after the run, with heat maps.
    a = write_image(tmp_path / "x" / "one.png", synthetic_smear(0, 40, 1))
    b = write_image(tmp_path / "y" / "two.png", synthetic_smear(2, 40, 2))
    out2 = tmp_path / "run.pdf"
    proc = classify(env, a, b, "--model", tiny_model, "--report", out2, "--heatmaps", tmp_path / "heat",
                    "--device", "cpu", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    text = pdf_text(out2)
    assert "classify-run" in text and "one.png" in text and "two.png" in text
    assert (tmp_path / "heat" / "one_gradcam.png").is_file()


def test_db_report_one_pdf_per_sample_with_reviews(tmp_path, tiny_model, env):
    smears(tmp_path / "A-1", 2)
    (tmp_path / "A-1" / "zero.png").write_bytes(b"")
    smears(tmp_path / "B-2", 2)
    db = tmp_path / "results.sqlite3"
    target = tmp_path / "rep" / "report.pdf"
    proc = classify(env, tmp_path / "A-1", tmp_path / "B-2", "--model", tiny_model, "--db", db,
                    "--report", target, "--out", tmp_path / "r.csv")
    assert proc.returncode == 3, proc.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == ["report-A-1.pdf", "report-B-2.pdf"]
    text_a = pdf_text(target.parent / "report-A-1.pdf")
    assert "A-1" in text_a and "zero.png" in text_a and "empty" in text_a and "cell1.jpg" in text_a
    assert "B-2" not in text_a
    assert "B-2" in pdf_text(target.parent / "report-B-2.pdf")

    with ResultStore.open(db) as store:
        first = store.predictions("B-2")[0]
        other = next(c for c in ("Benign", "Early", "Pre", "Pro") if c != first.predicted_class)
        store.record_review("B-2", first.path, other, "Dr. Who")
        audit_before = len(store.audit())
    single = tmp_path / "single.pdf"
    proc = classify(env, tmp_path / "B-2", "--model", tiny_model, "--db", db, "--report", single,
                    "--out", tmp_path / "r2.csv")
    assert proc.returncode == 0, proc.stderr
    text = pdf_text(single)  # exactly one sample: the given path
    assert "B-2" in text and "overridden by Dr. Who" in text and "Research use only" in text
    with ResultStore.open(db) as store:
        assert [e.action for e in store.audit()[audit_before:]] == ["export"]  # the report, nothing else


def test_unwritable_report_path_exit_2(tmp_path, tiny_model, env):
    smears(tmp_path / "in", 1)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    db, out = tmp_path / "results.sqlite3", tmp_path / "r.csv"
    proc = classify(env, tmp_path / "in", "--model", tiny_model, "--db", db, "--out", out,
                    "--report", blocker / "report.pdf")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "report.pdf" in errors[0] and "not a folder" in errors[0]
    assert not out.exists() and not db.exists()  # checked before anything was started

    (tmp_path / "adir.pdf").mkdir()
    proc = classify(env, tmp_path / "in", "--model", tiny_model, "--report", tmp_path / "adir.pdf")
    assert proc.returncode == 2 and "folder" in proc.stderr.strip().splitlines()[-1]


def test_help_documents_the_sample_rule(env):
    proc = subprocess.run([sys.executable, "main.py", "classify", "--help"], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for needle in ("--db FILE", "--report", "--operator", "--lab-name", "loose-files", "classify-run",
                   "signed off", "folder's name"):
        assert needle in text, needle


# ------------------------------------------------------------------------------------ units
def test_group_samples(tmp_path):
    from cli.classify_plan import group_samples, report_targets
    from engine.store.naming import LOOSE_SAMPLE_ID

    a = smears(tmp_path / "A", 2)
    inner = write_image(tmp_path / "A" / "sub" / "deep.png", synthetic_smear(0, 32, 0))
    l1 = write_image(tmp_path / "L" / "one.png", synthetic_smear(0, 32, 1))
    l2 = write_image(tmp_path / "L" / "two.png", synthetic_smear(0, 32, 2))
    other = write_image(tmp_path / "M" / "three.png", synthetic_smear(0, 32, 3))
    groups = group_samples([str(tmp_path / "A"), str(l1), str(l2)], [*a, inner, l1, l2])
    assert [(g.sample_id, [p.name for p in g.paths]) for g in groups] == [
        ("A", ["cell0.jpg", "cell1.jpg", "deep.png"]), ("L", ["one.png", "two.png"])]
    assert groups[0].folder == str(tmp_path / "A") and groups[1].folder == str(tmp_path / "L")
    groups = group_samples([str(l1), str(other)], [l1, other])
    assert [g.sample_id for g in groups] == [LOOSE_SAMPLE_ID] and groups[0].folder == ""
    # a file named directly inside a named folder belongs to that folder's sample
    groups = group_samples([str(a[0]), str(tmp_path / "A")], [a[0], a[1], inner])
    assert [(g.sample_id, len(g.paths)) for g in groups] == [("A", 3)]
    # two folders of the same name stay two samples (the store names the second "A (2)")
    twin = smears(tmp_path / "other" / "A", 1)
    groups = group_samples([str(tmp_path / "A"), str(tmp_path / "other" / "A")], [*a, *twin])
    assert [(g.sample_id, g.folder, len(g.paths)) for g in groups] == [
        ("A", str(tmp_path / "A"), 2), ("A", str(tmp_path / "other" / "A"), 1)]

    rep = tmp_path / "out" / "r.pdf"
    assert report_targets(rep, ["S1"]) == {"S1": rep}
    assert report_targets(rep, ["S1", "a/b"]) == {"S1": tmp_path / "out" / "r-S1.pdf",
                                                  "a/b": tmp_path / "out" / "r-a_b.pdf"}


def test_a_signed_off_sample_whose_files_changed_on_disk_is_warned_about_and_left_alone(tmp_path, tiny_model, env):
    folder = tmp_path / "S-010"
    images = smears(folder, 2)
    db = tmp_path / "results.sqlite3"
    assert classify(env, folder, "--model", tiny_model, "--db", db, "--out", tmp_path / "r1.csv").returncode == 0
    with ResultStore.open(db) as store:
        for r in store.predictions("S-010", model_sha(tiny_model)):
            if r.flagged:
                store.record_review("S-010", r.path, r.predicted_class, "Dr. Sign")
        store.sign_off("S-010", "Dr. Sign", "I have reviewed sample S-010 and approve this report.")
        before = [(r.path, r.image_sha256) for r in store.predictions("S-010")]
    write_image(images[0], synthetic_smear(3, 40, 123))  # replaced after the sign-off
    os.utime(images[0], ns=(1, 1))
    second = classify(env, folder, "--model", tiny_model, "--db", db, "--out", tmp_path / "r2.csv")
    assert second.returncode == 0, second.stderr
    assert "WARNING: sample S-010: 1 of its image file(s) changed on disk after it was signed off" in second.stderr
    with ResultStore.open(db) as store:
        assert [(r.path, r.image_sha256) for r in store.predictions("S-010")] == before  # the record stands
