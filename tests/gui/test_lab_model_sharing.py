"""Tools ▸ Models… ▸ Share with the lab…: the model becomes the lab's active model (with the reason,
audited) and this window follows it; at start-up a window follows the lab's model off the GUI
thread (installed from the lab database, verified), and refuses one changed there, saying so."""

from __future__ import annotations

import pytest

from engine.models.library import ModelLibrary
from engine.store.results import ResultStore, default_db_path
from gui import dialogs as gui_dialogs
from gui import errors as gui_errors
from gui.models_dialog import ModelsDialog
from gui.settings import Settings
from tests.conftest import save_tiny_model
from tests.gui.conftest import drive_dialog, make_window


@pytest.fixture
def lab_model(tmp_path):
    card = save_tiny_model(tmp_path / "trained", model_id="tiny-lab")
    return ModelLibrary().install(card.weights_path, by="ada", origin="trained here")


def test_share_with_the_lab_makes_it_the_labs_model_and_the_window_follows(qtbot, lab_model, monkeypatch):
    import threading

    from gui import models_dialog

    win = make_window(qtbot, Settings(device="cpu"))
    asked: list[str] = []
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda parent, title, label, *a: asked.append(label) or "validated")
    ran_on: list[threading.Thread] = []
    real_share = models_dialog.share_model
    monkeypatch.setattr(models_dialog, "share_model",
                        lambda *a: ran_on.append(threading.current_thread()) or real_share(*a))

    def share(dialog: ModelsDialog):
        assert "this workstation only" in dialog.share_button.toolTip()  # a local SQLite file
        dialog.select("tiny-lab@0.0.1")
        assert dialog.share_button.isEnabled()
        assert dialog.share_selected()
        assert not dialog.share_button.isEnabled()  # one share at a time
        qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
        assert ran_on and ran_on[0] is not threading.main_thread()  # a 46 MB model: not on the GUI thread
        assert "this workstation only" in asked[-1] and "tiny-lab@0.0.1" in asked[-1]
        assert "The lab's active model is now tiny-lab@0.0.1" in dialog.detail.text()
        assert dialog.library.active().sha256 == lab_model.sha256
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, share)
    assert win.open_models()
    assert win.model_card.weights_sha256 == lab_model.sha256  # followed at once
    lab = win.store.lab_active_model()
    assert lab is not None and (lab.sha256, lab.reason) == (lab_model.sha256, "validated")
    assert [e.action for e in win.store.audit() if e.action.endswith("_lab_model")] == [
        "publish_lab_model", "activate_lab_model"]


def test_a_cancelled_share_changes_nothing(qtbot, lab_model, monkeypatch):
    win = make_window(qtbot, Settings(device="cpu"))
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda *a, **k: None)

    def cancel(dialog: ModelsDialog):
        dialog.select("tiny-lab@0.0.1")
        assert not dialog.share_selected()
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, cancel)
    assert win.open_models()
    assert win.store.lab_active_model() is None and win.model_card.id == "resnet18"


def test_a_failed_share_says_why_and_changes_nothing(qtbot, lab_model, monkeypatch):
    from engine.store.errors import StoreError

    win = make_window(qtbot, Settings(device="cpu"))
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda *a, **k: "validated")
    shown: list[str] = []
    monkeypatch.setattr(gui_errors, "show_error", lambda parent, text, *a, **k: shown.append(text))

    def refuse(*_args, **_kwargs):
        raise StoreError("the lab database is read-only")

    def share(dialog: ModelsDialog):
        monkeypatch.setattr(dialog.store, "publish_lab_model", refuse)
        dialog.select("tiny-lab@0.0.1")
        assert dialog.share_selected()
        qtbot.waitUntil(lambda: not dialog.busy, timeout=20000)
        assert shown and "tiny-lab@0.0.1 was not shared with the lab" in shown[-1] and "read-only" in shown[-1]
        assert dialog.share_button.isEnabled() and "was not shared" in dialog.detail.text()
        dialog.reject()

    drive_dialog(monkeypatch, ModelsDialog, share)
    assert win.open_models()
    assert win.store.lab_active_model() is None and win.model_card.id == "resnet18"


def _shared_by_another_workstation(store: ResultStore, tmp_path) -> str:
    card = save_tiny_model(tmp_path / "elsewhere", model_id="tiny-lab")
    store.publish_lab_model(card.path, actor="ada")
    store.activate_lab_model(card.weights_sha256, "validated on our stain", actor="ada")
    return card.weights_sha256


def _start(qtbot, store: ResultStore | None = None):
    from gui.main_window import MainWindow

    win = MainWindow(Settings(device="cpu"), store=store)
    qtbot.addWidget(win)
    win.show()
    return win


def test_at_start_up_the_window_installs_and_follows_the_labs_model(qtbot, tmp_path, pg_url):
    lab = ResultStore.open(pg_url)  # the lab's database, shared by the workstations
    try:
        sha = _shared_by_another_workstation(lab, tmp_path)
        win = _start(qtbot, lab)
        qtbot.waitUntil(lambda: "installed from the lab database" in win.statusBar().currentMessage(), timeout=20000)
        assert win.model_card.weights_sha256 == sha and win.model_card.id == "tiny-lab"
        assert ModelLibrary().history()[-1].reason.startswith("lab's active model: validated on our stain")
        win.shutdown()
    finally:
        lab.close()


def test_a_running_window_follows_the_labs_model_within_seconds_and_a_rollback_too(qtbot, tmp_path, pg_url):
    lab, elsewhere = ResultStore.open(pg_url), ResultStore.open(pg_url)  # two workstations' connections
    try:
        win = _start(qtbot, lab)
        qtbot.waitUntil(lambda: win.model_card is not None and win.model_card.id == "resnet18", timeout=20000)
        shipped = win.model_card.weights_sha256
        sha = _shared_by_another_workstation(elsewhere, tmp_path)  # shared while this window is open
        qtbot.waitUntil(lambda: win.model_card.weights_sha256 == sha, timeout=10000)
        assert "installed from the lab database" in win.statusBar().currentMessage()
        elsewhere.publish_lab_model(_shipped_card(), actor="ada")
        elsewhere.activate_lab_model(shipped, "back to the shipped model", actor="ada")
        qtbot.waitUntil(lambda: win.model_card.weights_sha256 == shipped, timeout=10000)
        win.shutdown()
    finally:
        lab.close()
        elsewhere.close()


def _shipped_card() -> str:
    from engine.models.resolve import SHIPPED_MODELS_DIR

    return str(SHIPPED_MODELS_DIR / "resnet18.json")


def test_at_start_up_a_model_changed_in_the_database_is_refused(qtbot, tmp_path):
    with ResultStore.open(default_db_path()) as store:
        _shared_by_another_workstation(store, tmp_path)
        with store._db.write() as conn:  # as someone with an SQLite tool could
            conn.execute("DROP TRIGGER lab_model_files_no_update")
            conn.execute("UPDATE lab_model_files SET content = ? WHERE name = 'tiny-lab.safetensors'", (b"junk",))
    win = _start(qtbot)
    qtbot.waitUntil(lambda: "was not used on this workstation" in win.statusBar().currentMessage(), timeout=20000)
    message = win.statusBar().currentMessage()
    assert "tiny-lab 0.0.1" in message and "nothing was installed" in message
    assert win.model_card.id == "resnet18"
    assert [m for m in ModelLibrary().models() if m.card.id == "tiny-lab"] == []
    win.shutdown()
