"""``python main.py classify``: CSV/JSON outputs, heat maps and exit codes, run as a subprocess."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.conftest import (
    read_terminal,
    save_tiny_model,
    synthetic_field_without_white_cell,
    synthetic_smear,
    write_image,
)

ROOT = Path(__file__).resolve().parents[2]
HEADER = ["path", "status", "predicted_class", "confidence", "needs_review", "out_of_distribution",
          "prob_Benign", "prob_Early", "prob_Pre", "prob_Pro", "error", "flags"]


def classify(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "main.py", "classify", *map(str, args)], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    return rows[0], [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def check_row(row: dict[str, str]) -> None:
    assert row["needs_review"] in ("true", "false") and row["out_of_distribution"] in ("true", "false")
    if row["status"] == "ok":
        probs = [float(row[f"prob_{c}"]) for c in ("Benign", "Early", "Pre", "Pro")]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in probs)
        assert float(row["confidence"]) == pytest.approx(max(probs), abs=1e-6)
        assert row["predicted_class"] in ("Benign", "Early", "Pre", "Pro") and row["error"] == ""
    else:
        assert row["status"] == "error" and row["error"]
        assert row["predicted_class"] == row["confidence"] == row["prob_Benign"] == ""


def smear_folder(folder: Path, n: int = 3) -> list[Path]:
    return [write_image(folder / f"cell{i}.jpg", synthetic_smear(i % 4, 48, i), quality=92) for i in range(n)]


def test_all_ok_exit_0_and_csv(tmp_path, tiny_model):
    images = smear_folder(tmp_path / "in", 3)
    out = tmp_path / "results.csv"
    proc = classify(tmp_path / "in", "--model", tiny_model, "--out", out, "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    header, rows = read_csv(out.read_text(encoding="utf-8"))
    assert header == HEADER
    assert [r["path"] for r in rows] == [str(p) for p in images]
    for row in rows:
        assert row["status"] == "ok"
        check_row(row)
    assert "3 image(s)" in proc.stdout


def test_broken_files_give_error_rows_and_exit_3(tmp_path, tiny_model):
    folder = tmp_path / "in"
    smear_folder(folder, 2)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    good = write_image(folder / "trunc.jpg", synthetic_smear(1, 64, 0), quality=95)
    good.write_bytes(good.read_bytes()[:300])
    (folder / "notes.txt").write_text("lab notes")
    out = tmp_path / "r.csv"
    proc = classify(folder, "--model", tiny_model, "--out", out)
    assert proc.returncode == 3, proc.stderr
    header, rows = read_csv(out.read_text())
    assert header == HEADER
    status = {Path(r["path"]).name: r for r in rows}
    assert set(status) == {"cell0.jpg", "cell1.jpg", "empty.jpg", "text.jpg", "trunc.jpg"}
    assert status["cell0.jpg"]["status"] == status["cell1.jpg"]["status"] == "ok"
    assert "empty" in status["empty.jpg"]["error"]
    assert "not an image" in status["text.jpg"]["error"]
    assert "truncated" in status["trunc.jpg"]["error"]
    for row in rows:
        check_row(row)
    assert "notes.txt" in proc.stderr  # reported, but no row


def test_explicit_files_and_folders_mixed(tmp_path, tiny_model):
    smear_folder(tmp_path / "a", 2)
    single = write_image(tmp_path / "b" / "one.png", synthetic_smear(2, 40, 5))
    broken = tmp_path / "b" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff")
    proc = classify(tmp_path / "a", single, broken, "--model", tiny_model)  # CSV to stdout
    assert proc.returncode == 3
    header, rows = read_csv(proc.stdout)
    assert header == HEADER
    assert [Path(r["path"]).name for r in rows] == ["cell0.jpg", "cell1.jpg", "one.png", "broken.jpg"]
    assert rows[-1]["status"] == "error"
    assert "image(s)" in proc.stderr  # the summary goes to stderr when the CSV is on stdout


def test_missing_named_input_is_reported_and_exit_3(tmp_path, tiny_model):
    smear_folder(tmp_path / "in", 1)
    proc = classify(tmp_path / "in", tmp_path / "no-such-folder", "--model", tiny_model, "--out", tmp_path / "r.csv")
    assert proc.returncode == 3
    assert "no-such-folder" in proc.stderr
    assert len(read_csv((tmp_path / "r.csv").read_text())[1]) == 1


def test_no_images_exit_2(tmp_path, tiny_model):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    proc = classify(tmp_path / "empty", "--model", tiny_model)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:")
    assert "no image" in proc.stderr


def test_unwritable_out_exit_2(tmp_path, tiny_model):
    smear_folder(tmp_path / "in", 1)
    proc = classify(tmp_path / "in", "--model", tiny_model, "--out", "/nonexistent-dir/x.csv")
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "/nonexistent-dir/x.csv" in proc.stderr


def test_corrupt_model_exit_2(tmp_path, tiny_model):
    smear_folder(tmp_path / "in", 1)
    bad = tmp_path / "bad"
    bad.mkdir()
    weights = bad / tiny_model.name
    shutil.copy(tiny_model, weights)
    shutil.copy(tiny_model.with_suffix(".json"), bad / tiny_model.with_suffix(".json").name)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    out = tmp_path / "r.csv"
    proc = classify(tmp_path / "in", "--model", weights, "--out", out)
    assert proc.returncode == 2
    assert "corrupt or has been tampered" in proc.stderr
    assert not out.exists()  # nothing started


def test_missing_model_exit_2(tmp_path):
    smear_folder(tmp_path / "in", 1)
    proc = classify(tmp_path / "in", "--model", tmp_path / "none.safetensors")
    assert proc.returncode == 2 and "error:" in proc.stderr


def test_json_and_heatmaps(tmp_path, tiny_model):
    images = smear_folder(tmp_path / "in", 3)
    (tmp_path / "in" / "zero.png").write_bytes(b"")
    js, heat = tmp_path / "r.json", tmp_path / "heat"
    proc = classify(tmp_path / "in", "--model", tiny_model, "--out", tmp_path / "r.csv", "--json", js,
                    "--heatmaps", heat, "--device", "cpu", "--workers", "1")
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(js.read_text())
    assert set(doc) == {"model", "device", "backend", "precision", "results", "summary", "samples"}
    assert doc["precision"] == "fp32"  # the tiny model has no INT8 graph
    assert doc["model"]["id"] == "tiny" and doc["model"]["version"] == "0.0.1"
    assert len(doc["model"]["sha256"]) == 64
    assert doc["device"] == "cpu"
    assert len(doc["results"]) == 4
    s = doc["summary"]
    assert s["n_ok"] == 3 and s["n_error"] == 1
    assert sum(s["counts"].values()) + s["n_withheld"] == 3 and set(s["counts"]) == {"Benign", "Early", "Pre", "Pro"}
    assert s["n_needs_review"] == sum(r["needs_review"] for r in doc["results"])
    assert s["n_ood"] == sum(r["out_of_distribution"] for r in doc["results"])
    for r in doc["results"]:
        assert {"path", "status", "predicted_class", "confidence", "probabilities", "needs_review",
                "out_of_distribution", "error", "flags", "ood_score"} <= set(r)
        if r["status"] == "ok":
            assert sum(r["probabilities"].values()) == pytest.approx(1.0)
    for p in images:
        png = heat / f"{p.stem}_gradcam.png"
        assert png.is_file()
        img = cv2.imread(str(png))
        assert img is not None and img.shape == (32, 32, 3)
    assert not (heat / "zero_gradcam.png").exists()


def test_bad_batch_size_is_a_usage_error(tmp_path, tiny_model):
    smear_folder(tmp_path / "in", 1)
    proc = classify(tmp_path / "in", "--model", tiny_model, "--batch-size", "0")
    assert proc.returncode == 2 and "error:" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_on_a_terminal_only(tmp_path, tiny_model):
    import os
    import pty

    smear_folder(tmp_path / "in", 3)
    out = tmp_path / "r.csv"
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        proc = subprocess.run([sys.executable, "main.py", "classify", str(tmp_path / "in"), "--model", str(tiny_model),
                               "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, timeout=300)
    finally:
        os.close(slave)
    terminal = read_terminal(master)
    assert proc.returncode == 0
    assert "classify" in terminal and "3/3" in terminal  # tqdm's bar reached the end
    piped = classify(tmp_path / "in", "--model", tiny_model, "--out", out)
    assert piped.returncode == 0 and "3/3" not in piped.stderr  # no bar into a pipe or log


def test_a_field_without_white_cell_is_flagged_with_its_code_and_not_counted(tmp_path, tiny_model):
    smear_folder(tmp_path / "S-7", 3)
    write_image(tmp_path / "S-7" / "nocell.png", synthetic_field_without_white_cell(48, 0))
    out, js = tmp_path / "r.csv", tmp_path / "r.json"
    proc = classify(tmp_path / "S-7", "--model", tiny_model, "--out", out, "--json", js, "--device", "cpu",
                    "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    _, rows = read_csv(out.read_text(encoding="utf-8"))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["nocell.png"]["flags"].split(";")[0] == "no_white_cell"
    assert by_name["nocell.png"]["out_of_distribution"] == "true" and by_name["nocell.png"]["needs_review"] == "true"
    assert all("no_white_cell" not in by_name[f"cell{i}.jpg"]["flags"] for i in range(3))
    doc = json.loads(js.read_text())
    nocell = next(r for r in doc["results"] if r["path"].endswith("nocell.png"))
    assert nocell["flags"][0] == "no_white_cell" and nocell["predicted_class"]  # the model still said something
    assert nocell["flag_sentences"][0] == "No white cell found in this field: there is nothing the model can judge"
    s = doc["summary"]
    assert s["n_ok"] == 4 and s["n_withheld"] == 1 and sum(s["counts"].values()) == 3
    (sample,) = doc["samples"]
    assert sample["sample_id"] == "S-7" and sample["n_withheld"] == 1 and sample["n_classified"] == 3
    assert sample["acquisition_warning"] is None
    assert "1 the model cannot judge, not counted" in proc.stdout


def test_a_sample_unlike_the_training_images_gets_the_warning_and_no_call(tmp_path):
    model = save_tiny_model(tmp_path / "models", ood_threshold=0.0).weights_path  # every image is unlike
    smear_folder(tmp_path / "S-8", 4)
    js, pdf = tmp_path / "r.json", tmp_path / "r.pdf"
    proc = classify(tmp_path / "S-8", "--model", model, "--out", tmp_path / "r.csv", "--json", js,
                    "--report", pdf, "--device", "cpu", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(js.read_text())
    assert all("unlike_training" in r["flags"] for r in doc["results"])
    (sample,) = doc["samples"]
    assert sample["acquisition_warning"] == "The model has not been validated on images like these"
    assert sample["call_code"] == "INDETERMINATE_ACQUISITION"
    assert sample["call"] == "Indeterminate — images unlike the validated set"
    assert sample["n_unlike_training"] == 4 and sample["n_withheld"] == 4
    assert ("WARNING: sample S-8: The model has not been validated on images like these (4 of 4 images unlike "
            "the training images)") in proc.stdout
    pypdf = pytest.importorskip("pypdf")
    text = " ".join((page.extract_text() or "") for page in pypdf.PdfReader(str(pdf)).pages)
    text = " ".join(text.split())
    assert "The model has not been validated on images like these." in text
    assert "Indeterminate — images unlike the validated set" in text
    assert "feature distance" not in text.lower()
