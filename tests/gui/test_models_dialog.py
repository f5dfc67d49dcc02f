"""Tools ▸ Models…: the installed models with the active one marked and the results each
produced; activate with a reason (audited; the window follows and a pinned model is unpinned),
roll back, refuse a tampered import, delete; a technician sees it all but changes nothing."""

from __future__ import annotations

import pytest

from engine.core.identity import Role
from engine.models.library import ModelLibrary, ModelSource
from gui import dialogs as gui_dialogs
from gui.models_dialog import ModelsDialog
from gui.settings import Settings
from tests.conftest import save_tiny_model
from tests.gui.conftest import drive_dialog, make_sample_folder, make_window, open_sample, wait_classified


@pytest.fixture
def lab_model(tmp_path):
    """A lab model (tiny, random weights) installed in the test's own model library."""
    card = save_tiny_model(tmp_path / "trained", model_id="tiny-lab")
    return ModelLibrary().install(card.weights_path, by="ada", origin="trained here")


def column(dialog: ModelsDialog, ref: str, name: str) -> str:
    from gui.models_dialog import COLUMNS

    row = next(i for i, m in enumerate(dialog.models) if m.ref == ref)
    return dialog.table.item(row, COLUMNS.index(name)).text()


def test_activate_audits_the_reason_and_the_window_follows_then_rolls_back(qtbot, lab_model, tiny_model_path,
                                                                         monkeypatch, tmp_path, dialogs):
    win = make_window(qtbot, Settings(active_model=str(tiny_model_path), device="cpu"))  # pinned in Settings
    reasons = iter(["validated on our stain", "too many flags"])
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda *a, **k: next(reasons))
    pinned_id = win.model_card.id

    def promote(dialog: ModelsDialog):
        assert column(dialog, "tiny-lab@0.0.1", "Source") == "lab"
        assert column(dialog, "tiny-lab@0.0.1", "Results") == "0"
        assert column(dialog, f"resnet18@{dialog.library.active().card.version}", "") == "●"
        dialog.select("tiny-lab@0.0.1")
        assert "by ada (trained here)" in dialog.detail.text()
        assert dialog.activate_button.isEnabled() and dialog.delete_button.isEnabled()
        assert dialog.activate_selected()
        assert column(dialog, "tiny-lab@0.0.1", "") == "●" and not dialog.delete_button.isEnabled()
        assert column(dialog, "tiny-lab@0.0.1", "Promoted").endswith("validated on our stain")
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, promote)
    assert win.open_models()
    assert win.settings.active_model == "" and win.model_card.weights_sha256 == lab_model.sha256
    assert win.model_card.id == "tiny-lab" != pinned_id
    sample = open_sample(qtbot, win, make_sample_folder(tmp_path, count=2))
    win.classify_current()  # with the newly active model
    wait_classified(qtbot, win, sample)

    def roll_back(dialog: ModelsDialog):
        assert column(dialog, "tiny-lab@0.0.1", "Results") == "2"
        dialog.select(next(m.ref for m in dialog.models if m.card.id == "resnet18"))
        assert dialog.activate_selected()
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, roll_back)
    assert win.open_models() and win.model_card.id == "resnet18"
    changes = win.store.audit(action="model_changed")
    assert [e.details["reason"] for e in changes] == ["validated on our stain", "too many flags"]
    assert changes[1].details["previous_sha256"] == lab_model.sha256


def test_a_tampered_import_is_refused_and_a_lab_model_can_be_deleted(qtbot, lab_model, tmp_path, monkeypatch,
                                                                     dialogs):
    win = make_window(qtbot, Settings(device="cpu"))
    bad = save_tiny_model(tmp_path / "bad", model_id="bad-model")
    blob = bytearray(bad.weights_path.read_bytes())
    blob[-1] ^= 0xFF
    bad.weights_path.write_bytes(bytes(blob))
    monkeypatch.setattr(gui_dialogs, "choose_model_file", lambda *a, **k: str(bad.weights_path))
    monkeypatch.setattr(gui_dialogs, "confirm", lambda *a, **k: True)

    def manage(dialog: ModelsDialog):
        assert dialog.import_model()  # started in the dialog's worker
        qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
        shown = dialogs[-1]
        assert "was not imported" in shown["text"] and "tampered" in shown["text"] + shown["info"]
        assert all(m.card.id != "bad-model" for m in dialog.models)
        dialog.select("tiny-lab@0.0.1")
        assert dialog.delete_selected()
        assert [m for m in dialog.models if m.source is ModelSource.LAB] == []
        assert [e.details["model"] for e in win.store.audit(action="model_deleted")] == ["tiny-lab@0.0.1"]
        assert win.store.audit(action="model_installed") == []  # the refused import left no trace
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, manage)
    assert win.open_models()


def test_import_and_export_run_off_the_gui_thread_and_carry_the_graphs(qtbot, tmp_path, monkeypatch):
    import threading

    from engine.models import library as library_module
    from tests.conftest import save_tiny_int8_model

    win = make_window(qtbot, Settings(device="cpu"))
    card, _ = save_tiny_int8_model(tmp_path / "made")
    ran_on: list[threading.Thread] = []
    real_verify = library_module.verify
    monkeypatch.setattr(library_module, "verify",
                        lambda *a, **k: ran_on.append(threading.current_thread()) or real_verify(*a, **k))
    monkeypatch.setattr(gui_dialogs, "choose_model_file", lambda *a, **k: str(card.weights_path))
    monkeypatch.setattr("gui.models_dialog.choose_folder", lambda *a, **k: str(tmp_path / "stick"))

    def manage(dialog: ModelsDialog):
        assert dialog.import_model()
        assert not dialog.import_button.isEnabled()  # one act at a time
        qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
        assert ran_on and all(t is not threading.main_thread() for t in ran_on)
        assert dialog.selected() is not None and dialog.selected().card.id == "tiny"
        assert dialog.export_selected()
        qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
        assert "Exported tiny@0.0.1" in dialog.detail.text()
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, manage)
    assert win.open_models()
    assert {p.name for p in (tmp_path / "stick").iterdir()} == {"tiny.safetensors", "tiny.json", "tiny.onnx",
                                                                "tiny.int8.onnx"}
    assert [e.details["model"] for e in win.store.audit(action="model_installed")] == ["tiny@0.0.1"]


def test_a_technician_sees_the_models_but_may_not_change_them(qtbot, lab_model, monkeypatch):
    from engine.store.results import ResultStore, default_db_path
    from tests.gui.test_identity import PASSWORDS, sign_in

    with ResultStore.open(default_db_path()) as store:
        store.accounts.create("ada", PASSWORDS["ada"], Role.ADMINISTRATOR, actor="it")
        store.accounts.create("tom", PASSWORDS["tom"], Role.TECHNICIAN, actor="it")
        store.accounts.set_policy(accounts_required=True, actor="it")
    win = make_window(qtbot, Settings(device="cpu"))
    sign_in(win, monkeypatch, "tom")

    def look(dialog: ModelsDialog):
        dialog.select("tiny-lab@0.0.1")
        assert not dialog.activate_button.isEnabled() and not dialog.import_button.isEnabled()
        assert not dialog.delete_button.isEnabled() and dialog.export_button.isEnabled()
        assert not dialog.share_button.isEnabled()  # nor share one with the lab
        assert dialog.share_button.toolTip().startswith("Changing the models: ")
        assert dialog.activate_button.toolTip().startswith("Changing the models: ")
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, look)
    assert win.open_models()
    assert ModelLibrary().history() == []
