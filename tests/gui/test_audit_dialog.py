"""The audit view: chain status, filters, the table, Export… (never blocking)."""

from __future__ import annotations

import csv
import json
import sqlite3
from contextlib import closing

import pytest
from PySide6.QtCore import QDate, Qt

from engine.store.audit import TRIGGERS
from engine.store.results import ResultStore
from gui import theme
from gui.theme import Tone
from tests.conftest import fake_image_files
from tests.engine.store.test_results import record


@pytest.fixture
def store(tmp_path):
    folder = tmp_path / "S-001"
    paths = fake_image_files(folder, 3, stem="cell_", text="image")
    with ResultStore.open(tmp_path / "allsight.sqlite3") as s:
        s.create_or_get_sample("S-001", folder, operator="ana")
        s.add_images("S-001", paths)
        for p in paths:
            record(s, "S-001", p)
        s.sign_off("S-001", "dr. b", "I have reviewed sample S-001 and approve this report.")
        s.create_or_get_sample("S-002", tmp_path, operator="bo")
        yield s


@pytest.fixture
def dialog(qtbot, store):
    from gui.audit_dialog import AuditDialog

    dlg = AuditDialog(store)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def cell(dlg, row, column):
    return dlg.model.data(dlg.model.index(row, column), Qt.ItemDataRole.DisplayRole)


def test_the_table_shows_every_entry_in_words(dialog, store):
    n = len(store.audit())
    assert dialog.status.text() == f"Audit trail intact: {n} entries"
    assert theme.color(Tone.OK) in dialog.status.styleSheet()
    assert dialog.model.rowCount() == n and dialog.count.text() == f"{n} of {n} entries"
    rows = [[cell(dialog, r, c) for c in range(6)] for r in range(n)]
    classified = [r for r in rows if r[2] == "Classified"]
    assert {r[4] for r in classified} == {"cell_00.jpg", "cell_01.jpg", "cell_02.jpg"}
    assert classified[0][5] == "Pre by model tiny 0.0.1" and classified[0][3] == "S-001"
    signed = next(r for r in rows if r[2] == "Signed off")
    assert signed[1] == "dr. b" and "I have reviewed sample S-001" in signed[5]
    assert dialog.model.headerData(0, Qt.Orientation.Vertical) == "1"


def test_filters(dialog):
    dialog.sample_box.setCurrentIndex(dialog.sample_box.findData("S-002"))
    assert dialog.model.rowCount() == 1 and cell(dialog, 0, 2) == "Sample created"
    dialog.sample_box.setCurrentIndex(0)
    dialog.action_box.setCurrentIndex(dialog.action_box.findData("record_prediction"))
    assert dialog.model.rowCount() == 3
    dialog.action_box.setCurrentIndex(0)
    dialog.user_box.setCurrentIndex(dialog.user_box.findData("dr. b"))
    assert [e.action for e in dialog.model.entries] == ["sign_off"]
    dialog.user_box.setCurrentIndex(0)
    dialog.from_date.setDate(QDate.currentDate().addDays(1))
    dialog.from_check.setChecked(True)
    assert dialog.model.rowCount() == 0
    dialog.from_check.setChecked(False)
    dialog.to_date.setDate(QDate.currentDate())
    dialog.to_check.setChecked(True)
    assert dialog.model.rowCount() == len(dialog._all)


def test_a_damaged_trail_is_shown_in_red(qtbot, store):
    from gui.audit_dialog import AuditDialog

    with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("UPDATE audit_log SET actor = 'x' WHERE pk = 2")
    dlg = AuditDialog(store)
    qtbot.addWidget(dlg)
    assert dlg.status.text() == "Audit trail damaged: entry 2 was changed after it was written"
    assert theme.color(Tone.ERROR) in dlg.status.styleSheet()


def test_export_writes_the_entries_shown(dialog, tmp_path, monkeypatch):
    import gui.audit_dialog as module

    assert dialog.export() is None  # the file dialog is cancelled (conftest): nothing written
    target = tmp_path / "out" / "trail.json"
    monkeypatch.setattr(module, "choose_audit_file", lambda parent, start: str(target))
    dialog.action_box.setCurrentIndex(dialog.action_box.findData("record_prediction"))
    assert dialog.export() == target
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert doc["check"]["ok"] and [e["action"] for e in doc["entries"]] == ["record_prediction"] * 3
    assert doc["filters"]["action"] == "record_prediction"
    [exported] = dialog.store.audit(action="export")  # the export itself is in the audit trail
    assert exported.details == {"kind": "audit", "path": str(target.absolute()), "entries": 3}

    csv_target = tmp_path / "trail.csv"
    monkeypatch.setattr(module, "choose_audit_file", lambda parent, start: str(csv_target))
    dialog.action_box.setCurrentIndex(0)
    dialog.export()
    rows = list(csv.DictReader(csv_target.read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == dialog.model.rowCount()


def test_an_export_error_is_shown_not_raised(dialog, tmp_path, monkeypatch, dialogs):
    import gui.audit_dialog as module

    monkeypatch.setattr(module, "choose_audit_file", lambda parent, start: str(tmp_path / "trail.txt"))
    assert dialog.export() is None
    assert any(".csv or .json" in shown["text"] for shown in dialogs)
