"""The sign-off statement reaches the report: JSON (old JSON without it still reads) and PDF."""

from __future__ import annotations

import dataclasses

import pytest

from engine.core.records import sign_off_statement
from engine.reports.pdf import write_pdf
from engine.reports.sample import SampleReport, sample_report_from_store
from engine.reports.tables import read_json, write_json
from engine.store.results import ResultStore
from tests.engine.reports.test_report import make_report, pdf_text
from tests.engine.store.test_results import record

STATEMENT = "I have reviewed the 1 flagged image of sample S-0042 (of 6 images) and approve this report."


def test_the_statement_is_in_the_json_and_old_json_still_reads(tmp_path):
    report = dataclasses.replace(make_report(tmp_path, size=32), sign_off_statement=STATEMENT)
    data = report.to_dict()
    assert data["sign_off_statement"] == STATEMENT
    path = write_json(report, tmp_path / "r.json")
    assert read_json(path).sign_off_statement == STATEMENT
    del data["sign_off_statement"]  # a report written before the statement existed
    assert SampleReport.from_dict(data).sign_off_statement is None


def test_the_pdf_prints_the_statement(tmp_path):
    pytest.importorskip("pypdf")
    report = dataclasses.replace(make_report(tmp_path, size=32), sign_off_statement=STATEMENT)
    text = " ".join(" ".join(pdf_text(write_pdf(report, tmp_path / "r.pdf"))).split())
    assert "Statement signed" in text and "approve this report" in text


def test_the_report_from_the_store_carries_the_statement(tmp_path):
    folder = tmp_path / "S"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"a")
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        store.create_or_get_sample("S", folder, operator="ana")
        record(store, "S", folder / "a.jpg")
        assert sample_report_from_store(store, "S").sign_off_statement is None
        text = sign_off_statement("S", store.predictions("S"))
        store.sign_off("S", "dr. b", text)
        report = sample_report_from_store(store, "S")
    assert report.sign_off_statement == text and report.to_dict()["sign_off_statement"] == text
