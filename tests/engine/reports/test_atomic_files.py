"""engine.reports.files: AtomicFile (streamed, renamed into place at the end) and atomic_write;
the report CSV's text cells cannot be spreadsheet formulas."""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import pytest

from engine.reports.files import AtomicFile, atomic_write, written_in_place
from engine.reports.sample import ReportError


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_the_target_is_untouched_until_commit(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("old\n")
    sink = AtomicFile(target, "CSV file")
    sink.write("new,")
    sink.write("rows\n")
    assert target.read_text() == "old\n" and sink.temporary_path is not None and sink.temporary_path.exists()
    assert sink.temporary_path.parent == tmp_path and sink.temporary_path.name.startswith(".r.csv.")
    assert sink.commit() == target
    assert target.read_text() == "new,rows\n" and temp_files(tmp_path) == []
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # shareable like any output, not mkstemp's 0600


def test_abort_removes_the_temporary_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("{}")
    sink = AtomicFile(target, "JSON file")
    sink.write("{\"half")
    sink.abort()
    sink.abort()  # twice is harmless
    assert target.read_text() == "{}" and temp_files(tmp_path) == []


def test_a_context_manager_commits_or_aborts(tmp_path):
    with AtomicFile(tmp_path / "a.txt") as sink:
        sink.write("a")
    assert (tmp_path / "a.txt").read_text() == "a"
    with pytest.raises(KeyError), AtomicFile(tmp_path / "b.txt") as sink:
        sink.write("b")
        raise KeyError("boom")
    assert not (tmp_path / "b.txt").exists() and temp_files(tmp_path) == []


def test_a_full_disk_while_writing_is_a_report_error_and_leaves_nothing(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("old\n")
    sink = AtomicFile(target, "CSV file")

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    sink._fh.close()
    sink._fh = Full()  # type: ignore[assignment]
    with pytest.raises(ReportError) as info:
        sink.write("row\n")
    assert str(info.value) == f"Cannot write the CSV file to {target}: the disk is full (no space left on device)"
    assert target.read_text() == "old\n" and temp_files(tmp_path) == []
    sink.abort()


def test_a_full_disk_at_the_sync_is_a_report_error_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "r.csv"
    target.write_text("old\n")
    sink = AtomicFile(target, "CSV file")
    sink.write("x" * 100)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("engine.reports.files.os.fsync", full)
    with pytest.raises(ReportError, match="the disk is full"):
        sink.prepare()
    monkeypatch.undo()
    assert target.read_text() == "old\n" and temp_files(tmp_path) == []
    with pytest.raises(ReportError):
        atomic_write(tmp_path / "x.bin", lambda fh: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")), "X")
    assert not (tmp_path / "x.bin").exists() and temp_files(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_dev_full_is_written_directly_and_fails_with_the_reason(tmp_path):
    link = tmp_path / "full.csv"
    link.symlink_to("/dev/full")
    assert written_in_place(link)
    sink = AtomicFile(link, "CSV file")
    assert sink.direct and sink.temporary_path is None
    sink.write("a,b\n")
    with pytest.raises(ReportError, match=f"Cannot write the CSV file to {link}: the disk is full"):
        sink.commit()
    assert link.is_symlink() and temp_files(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_dev_null_is_written_not_replaced(tmp_path):
    for path in ("/dev/null", tmp_path / "null-link"):
        if path != "/dev/null":
            Path(path).symlink_to("/dev/null")
        atomic_write(path, lambda fh: fh.write(b"nothing"), "X")
        assert os.path.exists("/dev/null") and not Path("/dev/null").is_file()
    assert (tmp_path / "null-link").is_symlink()


def test_a_link_is_followed_and_kept(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with AtomicFile(link, "CSV file") as sink:
        sink.write("new")
    assert link.is_symlink() and real.read_text() == "new"
    atomic_write(link, lambda fh: fh.write(b"newer"))
    assert link.is_symlink() and real.read_text() == "newer"


def test_a_folder_or_a_missing_folder(tmp_path):
    with pytest.raises(ReportError, match="that path is a folder"):
        AtomicFile(tmp_path, "CSV file")
    with pytest.raises(ReportError, match="the folder does not exist"):
        AtomicFile(tmp_path / "missing" / "r.csv", "CSV file", create_folders=False)
    assert not (tmp_path / "missing").exists()
    with AtomicFile(tmp_path / "made" / "r.csv", "CSV file") as sink:  # created by default
        sink.write("x")
    assert (tmp_path / "made" / "r.csv").read_text() == "x"


def test_binary_mode(tmp_path):
    with AtomicFile(tmp_path / "a.png", "heat map", binary=True) as sink:
        sink.write(b"\x89PNG")
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG"


# ----------------------------------------------------------------------------- the report CSV
def test_the_report_csv_neutralises_formula_text_but_not_numbers(tmp_path):
    import dataclasses

    from engine.reports.tables import REPORT_CSV_COLUMNS, REPORT_CSV_NUMBERS, write_csv
    from tests.engine.reports.test_report import make_report

    report = make_report(tmp_path / "imgs", 6)
    images = list(report.images)
    images[0] = dataclasses.replace(images[0], file_name="=HYPERLINK(\"x\").jpg", reviewed_by="+Dr")
    report = dataclasses.replace(report, operator="=cmd|' /C calc'!A0", patient_id="@P-1", sample_id="-S",
                                 lab_name="\tLab", reviewer="\rRev", images=tuple(images))
    with open(write_csv(report, tmp_path / "r.csv"), newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert set(REPORT_CSV_COLUMNS) >= REPORT_CSV_NUMBERS
    for row in rows:
        assert row["operator"] == "'=cmd|' /C calc'!A0" and row["patient_id"] == "'@P-1"
        assert row["sample_id"] == "'-S" and row["lab_name"] == "'\tLab" and row["reviewer"] == "'\rRev"
        assert row["index"].isdigit()
        assert row["confidence"] == "" or float(row["confidence"]) >= 0
    assert rows[0]["file_name"] == "'=HYPERLINK(\"x\").jpg" and rows[0]["reviewed_by"] == "'+Dr"
    assert rows[1]["file_name"] == report.images[1].file_name  # ordinary text unchanged


def test_a_file_abandoned_after_an_error_cannot_be_committed(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("old")
    sink = AtomicFile(target, "CSV file")
    sink.write("half")
    sink.abort()
    with pytest.raises(ReportError, match="abandoned"):
        sink.commit()
    assert target.read_text() == "old"
    done = AtomicFile(target, "CSV file")
    done.write("new")
    done.commit()
    done.abort()  # after the commit: nothing to undo
    assert target.read_text() == "new"
