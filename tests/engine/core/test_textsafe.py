"""engine.core.textsafe: CSV cells no spreadsheet runs, names no terminal obeys."""

from __future__ import annotations

import pytest

from engine.core.records import CSV_COLUMNS, ImageResult
from engine.core.textsafe import FORMULA_TRIGGERS, csv_text, printable


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"x\")"])
def test_a_cell_that_would_be_a_formula_gets_a_quote(text):
    assert csv_text(text) == "'" + text


@pytest.mark.parametrize("text", ["", "a=b", "cell-1.jpg", "/data/=x.jpg", "'quoted", " =x", "0.5", "Pre"])
def test_other_cells_are_unchanged(text):
    assert csv_text(text) == text


def test_the_triggers_are_owasps():
    assert set(FORMULA_TRIGGERS) == {"=", "+", "-", "@", "\t", "\r"}


def test_a_csv_row_neutralises_text_not_numbers():
    probs = {"Benign": 0.1, "Early": 0.2, "Pre": 0.3, "Pro": 0.4}
    row = ImageResult("=cmd|' /C calc'!A0.jpg", "ok", "Pro", 0.4, probs).csv_row()
    assert set(row) == set(CSV_COLUMNS)
    assert row["path"] == "'=cmd|' /C calc'!A0.jpg"
    assert row["confidence"] == "0.400000" and row["prob_Benign"] == "0.100000"
    failed = ImageResult("-x.jpg", "error", error="-bad").csv_row()
    assert failed["path"] == "'-x.jpg" and failed["error"] == "'-bad" and failed["confidence"] == ""
    plain = ImageResult("/data/S-1/a.jpg", "ok", "Pre", 0.9, probs).csv_row()
    assert plain["path"] == "/data/S-1/a.jpg"


@pytest.mark.parametrize(("raw", "shown"), [
    ("evil\x1b[2J.jpg", "evil\\x1b[2J.jpg"),
    ("two\nlines.jpg", "two\\x0alines.jpg"),
    ("cr\r.jpg", "cr\\x0d.jpg"),
    ("bell\x07", "bell\\x07"),
    ("del\x7f", "del\\x7f"),
    ("csi\x9b31m", "csi\\x9b31m"),  # C1: a one-byte escape sequence on some terminals
    ("gpj.\u202eexe", "gpj.\\u202eexe"),  # right-to-left override: "exe.jpg" shown as "gpj.exe"
    ("line\u2028sep", "line\\u2028sep"),
    ("raw\udcffbyte.jpg", "raw\\xffbyte.jpg"),  # a file name byte that is not UTF-8
])
def test_control_characters_are_shown_escaped(raw, shown):
    assert printable(raw) == shown
    assert printable(shown) == shown  # applying it twice changes nothing
    shown.encode("utf-8")  # printable on any terminal


@pytest.mark.parametrize("text", ["", "C:\\data\\S-1\\a.jpg", "Ünïcødé 血液 – ok", "tab-free text"])
def test_printable_text_is_unchanged(text):
    assert printable(text) == text


def test_printable_takes_any_object():
    from pathlib import Path

    assert printable(Path("/x/a\x1b.jpg")) == "/x/a\\x1b.jpg"
