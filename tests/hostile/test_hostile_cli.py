"""Hostile inputs and outputs for ``python main.py classify``: nothing lost, nothing falsified.

Each test runs the command as a user would (a subprocess) and checks the exit code, the message
and what is left on disk: input images byte-identical, an old CSV intact, no temporary files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import read_terminal, synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]
OLD_CSV = "path,status\nold,ok\n"


def run(*args, cwd: Path = ROOT, env: dict[str, str] | None = None, main: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, main or str(ROOT / "main.py"), "classify", *map(str, args)]
    proc = subprocess.run(command, cwd=cwd, env=env, check=False, capture_output=True, text=True,
                          errors="surrogateescape", timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "unexpected" not in proc.stderr, proc.stderr  # a known failure, not the bug handler
    return proc


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "ALLSIGHT_DATA_DIR": str(tmp_path / "appdata"), "ALLSIGHT_LOG_DIR": str(tmp_path / "logs"),
            "QT_QPA_PLATFORM": "offscreen"}


def smears(folder: Path, n: int = 2) -> list[Path]:
    return [write_image(folder / f"cell{i}.jpg", synthetic_smear(i % 4, 40, i), quality=92) for i in range(n)]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under the folders (hidden ones too; not the log folder) -> sha256 of its content."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink() and "logs" not in path.relative_to(folder).parts[:1]:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == errors[0]
    return errors[0]


def no_temp_files(*folders: Path) -> None:
    for folder in folders:
        left = [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
        assert not left, left


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------------------------------ clashes
@pytest.mark.parametrize("option", ["--out", "--json", "--report"])
def test_an_output_onto_an_input_image_is_refused_and_nothing_is_written(tmp_path, tiny_model, env, option):
    folder = tmp_path / "S-1"
    images = smears(folder, 3)
    before = snapshot(tmp_path)
    proc = run(folder, "--model", tiny_model, option, images[1], env=env)
    line = one_error_line(proc)
    assert f"{option} {images[1]}" in line and f"the input image {images[1]}" in line
    assert snapshot(tmp_path) == before  # the images untouched, nothing else written
    assert not (tmp_path / "appdata").exists()


def test_the_issue_command_overwrites_nothing(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    a, b, c = smears(folder, 3)
    before = snapshot(tmp_path)
    proc = run(folder, "--model", tiny_model, "--out", a, "--json", b, "--report", c, env=env)
    assert "would overwrite the input image" in one_error_line(proc)
    assert snapshot(tmp_path) == before


def test_an_image_named_output_inside_an_input_folder_is_refused(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    smears(folder, 2)
    before = snapshot(tmp_path)
    proc = run(folder, "--model", tiny_model, "--out", folder / "sub" / "results.png", env=env)
    line = one_error_line(proc)
    assert str(folder / "sub" / "results.png") in line and f"inside the input folder {folder}" in line
    assert snapshot(tmp_path) == before and not (folder / "sub").exists()


def test_a_csv_inside_the_input_folder_is_fine_and_not_taken_for_an_image(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    images = smears(folder, 2)
    out = folder / "results.csv"
    for _ in range(2):  # the second run finds the first run's CSV in the folder
        proc = run(folder, "--model", tiny_model, "--out", out, "--json", folder / "results.json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert [r["path"] for r in rows(out.read_text(encoding="utf-8"))] == [str(p) for p in images]


@pytest.mark.parametrize("where", ["the folder", "a sub-folder"])
def test_heatmaps_inside_an_input_folder_are_refused(tmp_path, tiny_model, env, where):
    folder = tmp_path / "S-1"
    smears(folder, 2)
    heat = folder if where == "the folder" else folder / "heat"
    before = snapshot(tmp_path)
    proc = run(folder, "--model", tiny_model, "--out", tmp_path / "r.csv", "--heatmaps", heat, env=env)
    line = one_error_line(proc)
    assert f"--heatmaps {heat} is inside the input folder {folder}" in line
    assert snapshot(tmp_path) == before and not (folder / "heat").exists() and not (tmp_path / "r.csv").exists()


def test_a_heat_map_onto_an_input_image_named_directly_is_refused(tmp_path, tiny_model, env):
    a = write_image(tmp_path / "x" / "a.jpg", synthetic_smear(0, 40, 0), quality=92)
    victim = write_image(tmp_path / "x" / "a_gradcam.png", synthetic_smear(1, 40, 1))
    before = snapshot(tmp_path)
    proc = run(a, victim, "--model", tiny_model, "--heatmaps", tmp_path / "x", env=env)
    line = one_error_line(proc)
    assert f"--heatmaps {victim} would overwrite the input image {victim}" in line
    assert snapshot(tmp_path) == before


def test_out_and_json_on_one_file_are_refused(tmp_path, tiny_model, env):
    smears(tmp_path / "S-1", 1)
    out = tmp_path / "r.csv"
    out.write_text(OLD_CSV)
    link = tmp_path / "link.json"
    link.symlink_to(out)
    for json_path in (out, link):  # the same name, or a link to it
        proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", out, "--json", json_path, env=env)
        line = one_error_line(proc)
        assert f"--out {out} and --json {json_path} are the same path" in line
        assert out.read_text() == OLD_CSV


def test_an_output_onto_a_named_input_file_or_the_database_is_refused(tmp_path, tiny_model, env):
    smears(tmp_path / "S-1", 1)
    notes = tmp_path / "notes.txt"
    notes.write_text("lab notes")
    proc = run(tmp_path / "S-1", notes, "--model", tiny_model, "--out", notes, env=env)
    assert f"would overwrite the input file {notes}" in one_error_line(proc)
    assert notes.read_text() == "lab notes"
    db = tmp_path / "db.sqlite3"
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--db", db, "--json", db, env=env)
    assert f"would overwrite the result database {db}" in one_error_line(proc)
    assert not db.exists()
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", tiny_model.with_suffix(".json"), env=env)
    assert "would overwrite the model file" in one_error_line(proc)
    image = tmp_path / "S-1" / "cell0.jpg"
    before = image.read_bytes()
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--db", image, env=env)
    assert f"--db {image} would overwrite the input image {image}" in one_error_line(proc)
    assert image.read_bytes() == before and not Path(f"{image}-wal").exists()


def test_a_per_sample_report_clashing_with_another_output_is_refused(tmp_path, tiny_model, env):
    smears(tmp_path / "A", 1)
    smears(tmp_path / "B", 1)
    report = tmp_path / "out" / "r.pdf"
    clash = tmp_path / "out" / "r-B.pdf"  # what --report expands to for sample B
    proc = run(tmp_path / "A", tmp_path / "B", "--model", tiny_model, "--db", tmp_path / "db.sqlite3",
               "--report", report, "--out", clash, env=env)
    line = one_error_line(proc)
    assert f"--out {clash} and --report {clash} are the same path" in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "db.sqlite3").exists()


# --------------------------------------------------------------------------------- atomicity
@pytest.mark.parametrize("kind", ["missing folder", "a file as folder"])
def test_a_bad_json_path_leaves_an_existing_csv_alone(tmp_path, tiny_model, env, kind):
    smears(tmp_path / "S-1", 1)
    out = tmp_path / "r.csv"
    out.write_text(OLD_CSV)
    if kind == "missing folder":
        bad = tmp_path / "no-such-folder" / "r.json"
    else:
        (tmp_path / "plain").write_text("x")
        bad = tmp_path / "plain" / "r.json"
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", out, "--json", bad, env=env)
    assert str(bad) in one_error_line(proc)
    assert out.read_text() == OLD_CSV
    no_temp_files(tmp_path)


@pytest.mark.skipif(os.name != "posix" or (hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="needs a folder this user cannot write (root writes anywhere)")
def test_a_json_in_a_read_only_folder_leaves_an_existing_csv_alone(tmp_path, tiny_model, env):
    smears(tmp_path / "S-1", 1)
    out = tmp_path / "r.csv"
    out.write_text(OLD_CSV)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", out, "--json", locked / "r.json", env=env)
        assert str(locked / "r.json") in one_error_line(proc)
    finally:
        locked.chmod(0o755)
    assert out.read_text() == OLD_CSV


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_for_the_json_keeps_the_old_csv(tmp_path, tiny_model, env):
    images = smears(tmp_path / "S-1", 2)
    out = tmp_path / "r.csv"
    out.write_text(OLD_CSV)
    full = tmp_path / "full.json"
    full.symlink_to("/dev/full")
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", out, "--json", full, env=env)
    line = one_error_line(proc)
    assert str(full) in line and "the disk is full" in line
    assert out.read_text() == OLD_CSV  # not replaced by this run's CSV: the outputs go in place together
    no_temp_files(tmp_path)
    assert snapshot(tmp_path / "S-1") == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in images}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_for_the_csv_names_it(tmp_path, tiny_model, env):
    smears(tmp_path / "S-1", 2)
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", full, env=env)
    line = one_error_line(proc)
    assert f"CSV file to {full}" in line and "the disk is full" in line
    assert full.is_symlink() and os.readlink(full) == "/dev/full"
    no_temp_files(tmp_path)


_FULL_AFTER_HEADER = """\
import errno, runpy, sys
sys.path.insert(0, {root!r})
import engine.reports.files as files

class Full:
    def __init__(self, real):
        self.real, self.n = real, 0
    def write(self, text):
        self.n += 1
        if self.n > 1:  # the header goes in, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real.write(text)
    def __getattr__(self, name):
        return getattr(self.real, name)

init = files.AtomicFile.__init__
def full_csv(self, *args, **kwargs):
    init(self, *args, **kwargs)
    if self.path.suffix == ".csv":
        self._fh = Full(self._fh)
files.AtomicFile.__init__ = full_csv
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path({main!r}, run_name="__main__")
"""


def test_a_disk_full_in_the_middle_of_the_csv_keeps_the_old_csv(tmp_path, tiny_model, env):
    smears(tmp_path / "S-1", 3)
    out = tmp_path / "r.csv"
    out.write_text(OLD_CSV)
    wrapper = tmp_path / "full_disk.py"
    wrapper.write_text(_FULL_AFTER_HEADER.format(root=str(ROOT), main=str(ROOT / "main.py")))
    proc = run(tmp_path / "S-1", "--model", tiny_model, "--out", out, "--json", tmp_path / "r.json", env=env,
               main=str(wrapper))
    line = one_error_line(proc)
    assert line == f"error: Cannot write the CSV file to {out}: the disk is full (no space left on device)"
    assert out.read_text() == OLD_CSV
    assert not (tmp_path / "r.json").exists()
    no_temp_files(tmp_path)


# ---------------------------------------------------------------------------- formula cells
FORMULAS = ["=HYPERLINK(\"evil.example\",\"y\").jpg", "+1+2.jpg", "-3.jpg", "@SUM(A1).jpg"]


def test_formula_file_names_are_neutralised_in_the_classify_csv(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    for i, name in enumerate(FORMULAS):
        write_image(folder / name, synthetic_smear(i % 4, 40, i), quality=92)
    (folder / "=broken.jpg").write_text("not an image")
    proc = run(".", "--model", tiny_model, "--out", tmp_path / "r.csv", cwd=folder, env=env)
    assert proc.returncode == 3, proc.stderr  # the broken one
    got = rows((tmp_path / "r.csv").read_text(encoding="utf-8"))
    assert sorted(r["path"] for r in got) == sorted("'" + n for n in [*FORMULAS, "=broken.jpg"])
    for row in got:
        if row["status"] == "ok":
            float(row["confidence"])  # numbers are not prefixed
            assert not row["prob_Benign"].startswith("'")


def test_formula_operator_patient_and_file_names_are_neutralised_in_the_report_csv(tmp_path, tiny_model, env):
    from engine.reports.sample import sample_report_from_store
    from engine.reports.tables import write_csv
    from engine.store.results import ResultStore

    folder = tmp_path / "+S-1"
    write_image(folder / "-x.jpg", synthetic_smear(0, 40, 0), quality=92)
    smears(folder, 1)
    db = tmp_path / "db.sqlite3"
    operator = "=cmd|' /C calc'!A0"
    proc = run(folder, "--model", tiny_model, "--db", db, "--operator", operator, "--out", tmp_path / "r.csv",
               env=env)
    assert proc.returncode == 0, proc.stderr
    with ResultStore.open(db) as store:
        store.update_sample("+S-1", patient_id="@P-7", actor="test")
        report = sample_report_from_store(store, "+S-1", operator=operator)
    with open(write_csv(report, tmp_path / "report.csv"), newline="", encoding="utf-8-sig") as f:
        got = list(csv.DictReader(f))
    assert {r["operator"] for r in got} == {"'" + operator}
    assert {r["sample_id"] for r in got} == {"'+S-1"} and {r["patient_id"] for r in got} == {"'@P-7"}
    assert "'-x.jpg" in {r["file_name"] for r in got}
    assert all(r["index"].isdigit() and float(r["confidence"]) >= 0 for r in got)


# ---------------------------------------------------------------------------- the terminal
def test_control_characters_in_a_file_name_do_not_reach_the_terminal(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    smears(folder, 1)
    evil = folder / "evil\x1b[2J\x1b]0;pwned\x07\nfake.jpg"
    evil.write_text("not an image")
    (folder / "note\x1b[31m.txt").write_text("x")
    out = tmp_path / "r.csv"
    proc = run(folder, "--model", tiny_model, "--out", out, env=env)
    assert proc.returncode == 3, proc.stderr
    for stream in (proc.stderr, proc.stdout):
        assert "\x1b" not in stream and "\x07" not in stream
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\x0afake.jpg" in proc.stderr  # the failed line, escaped, one line
    assert "note\\x1b[31m.txt" in proc.stderr  # the skipped line
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].endswith("not an image, or an unsupported image format")
    assert str(evil) in {r["path"] for r in rows(out.read_text(encoding="utf-8"))}  # the CSV keeps the real name
    # ... and in the one error line
    proc = run(folder, "--model", tiny_model, "--out", evil, env=env)
    line = one_error_line(proc)
    assert "\x1b" not in proc.stderr and "\\x1b[2J" in line


# ------------------------------------------------------------------------------- huge files
def test_a_sparse_3_gb_jpeg_is_refused_before_it_is_read(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    smears(folder, 1)
    huge = folder / "huge.jpg"
    head = write_image(tmp_path / "head.jpg", synthetic_smear(0, 40, 0), quality=92).read_bytes()
    with open(huge, "wb") as f:
        f.write(head)
        f.truncate(3 * 2**30)
    if huge.stat().st_blocks * 512 > 2**28:
        pytest.skip("this file system has no sparse files")
    out = tmp_path / "r.csv"
    start = time.monotonic()
    proc = run(folder, "--model", tiny_model, "--out", out, env=env)
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    by_name = {Path(r["path"]).name: r for r in rows(out.read_text(encoding="utf-8"))}
    assert by_name["cell0.jpg"]["status"] == "ok"
    assert by_name["huge.jpg"]["status"] == "error"
    assert by_name["huge.jpg"]["error"].startswith("file is 3,072 MB, larger than the 64 MB limit")
    assert "huge.jpg" in proc.stderr and "ALLSIGHT_MAX_IMAGE_MB" in proc.stderr
    assert elapsed < 120  # generous: reading it would take minutes and gigabytes
    # the limit is a setting
    proc = run(folder, "--model", tiny_model, "--out", out, env={**env, "ALLSIGHT_MAX_IMAGE_MB": "0.0001"})
    assert proc.returncode == 3
    got = rows(out.read_text(encoding="utf-8"))
    assert len(got) == 2 and all(r["status"] == "error" for r in got)
    assert all("larger than the 104 bytes limit" in r["error"] for r in got)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_csv_rows_on_a_terminal_show_control_characters_escaped(tmp_path, tiny_model, env):
    import pty

    folder = tmp_path / "S-1"
    smears(folder, 1)
    (folder / "evil\x1b]0;pwned\x07.jpg").write_text("not an image")
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "main.py", "classify", str(folder), "--model", str(tiny_model)],
                              cwd=ROOT, env=env, stdout=slave, stderr=subprocess.PIPE, timeout=300)
    finally:
        os.close(slave)
    terminal = read_terminal(master)
    assert proc.returncode == 3, proc.stderr
    assert "evil\\x1b]0;pwned\\x07.jpg" in terminal and "\x1b" not in terminal and "\x07" not in terminal


# ------------------------------------------------------------------- names that are not UTF-8
def not_utf8_image(folder: Path) -> Path:
    """An image whose name holds a Latin-1 byte (0xE9, "é"): Python spells it with a lone surrogate."""
    path = folder / os.fsdecode(b"caf\xe9.jpg")
    return write_image(path, synthetic_smear(1, 40, 5), quality=92)


def test_a_file_name_that_is_not_utf8_is_classified_and_listed_escaped(tmp_path, tiny_model, env):
    folder = tmp_path / "S-1"
    smears(folder, 1)
    odd = not_utf8_image(folder)
    out, js, pdf = tmp_path / "r.csv", tmp_path / "r.json", tmp_path / "r.pdf"
    proc = run(folder, "--model", tiny_model, "--out", out, "--json", js, "--report", pdf, env=env)
    assert proc.returncode == 0, proc.stderr
    got = {r["path"]: r for r in rows(out.read_text(encoding="utf-8"))}
    escaped = str(folder / "caf\\xe9.jpg")
    assert set(got) == {str(folder / "cell0.jpg"), escaped} and got[escaped]["status"] == "ok"
    import json

    results = json.loads(js.read_text(encoding="utf-8"))["results"]
    assert str(odd) in {r["path"] for r in results}  # the JSON keeps the exact name (a \udce9 escape)
    assert pdf.stat().st_size > 0


def test_a_file_name_that_is_not_utf8_is_refused_by_the_store_alone_and_the_rest_is_kept(tmp_path, tiny_model, env):
    from engine.store.results import ResultStore

    folder = tmp_path / "S-1"
    smears(folder, 2)
    not_utf8_image(folder)
    db, out = tmp_path / "db.sqlite3", tmp_path / "r.csv"
    proc = run(folder, "--model", tiny_model, "--db", db, "--out", out, env=env)
    assert proc.returncode == 3, proc.stderr  # one image has no result
    got = {Path(r["path"]).name: r for r in rows(out.read_text(encoding="utf-8"))}
    assert got["caf\\xe9.jpg"]["status"] == "error" and "not valid UTF-8" in got["caf\\xe9.jpg"]["error"]
    assert got["cell0.jpg"]["status"] == got["cell1.jpg"]["status"] == "ok"
    with ResultStore.open(db) as store:
        assert sorted(Path(r.path).name for r in store.predictions("S-1")) == ["cell0.jpg", "cell1.jpg"]
