"""Tools ▸ Retrain model…, driven end to end on a tiny synthetic data set (32 px baseline, two
epochs): data refused with the reason, training in a child process with a live plot, compare,
promote (audited with the figures) and rollback; cancel; and a killed training resumed when the
wizard opens again. Nothing the lab had changes before the promotion."""

from __future__ import annotations

import pytest

from engine.models.library import ModelLibrary
from engine.models.resolve import resolve_model_card
from engine.training import job
from gui import dialogs as gui_dialogs
from gui.retrain_wizard import COMPARE, PROMOTE, SETTINGS, TRAINING, RetrainWizard, interrupted_runs
from gui.settings import Settings
from tests.conftest import save_tiny_model
from tests.engine.training.test_lab_data import class_folders
from tests.gui.conftest import drive_dialog, make_window

TRAINING_TIMEOUT_MS = 180_000


@pytest.fixture
def base(tmp_path):
    """A tiny model installed and active (so the wizard fine-tunes it in seconds)."""
    library = ModelLibrary()
    model = library.install(save_tiny_model(tmp_path / "base", model_id="tiny-base").weights_path, by="it",
                            origin="test")
    library.activate(model.ref, by="it", reason="test setup")
    return model


@pytest.fixture
def window(qtbot, base):
    win = make_window(qtbot, Settings(device="cpu"))
    yield win
    win.shutdown()


def open_wizard(qtbot, win) -> RetrainWizard:
    wizard = RetrainWizard(ModelLibrary(verify_network=False), win.store, win.workers, win.access.user, win)
    qtbot.addWidget(wizard)
    wizard.show()
    return wizard


def to_training(qtbot, wizard: RetrainWizard, folder, epochs: int = 2) -> None:
    wizard.data_page.add_folder(folder)
    qtbot.waitUntil(wizard.data_page.isComplete, timeout=30_000)
    wizard.next()
    assert wizard.currentId() == SETTINGS
    assert wizard.settings_page.estimate_label.text().startswith("about ")
    wizard.settings_page.epochs_spin.setValue(epochs)
    wizard.next()
    assert wizard.currentId() == TRAINING


def test_train_compare_promote_then_roll_back(qtbot, window, base, tmp_path):
    wizard = open_wizard(qtbot, window)
    to_training(qtbot, wizard, class_folders(tmp_path / "labelled", per_class=10))
    page = wizard.training_page
    assert resolve_model_card(None).weights_sha256 == base.sha256  # nothing changed while training
    qtbot.waitUntil(page.isComplete, timeout=TRAINING_TIMEOUT_MS)
    assert len(page.plot.val_acc) == 2 and page.plot.loss
    wizard.next()
    assert wizard.currentId() == COMPARE
    table = wizard.compare_page.table
    assert table.rowCount() >= 6 and "new" in table.horizontalHeaderItem(2).text()
    wizard.next()
    assert wizard.currentId() == PROMOTE and wizard.promote_page.isComplete()
    wizard.promote_page.reason_edit.setText("better on our stain")
    wizard.accept()
    active = ModelLibrary().active()
    assert active.sha256 != base.sha256 and active.card.id == "lab-model"
    entry = window.store.audit(action="model_changed")[-1]
    assert entry.details["reason"] == "better on our stain" and entry.details["previous_sha256"] == base.sha256
    assert "lab_validation" in entry.details["figures"]
    ModelLibrary().activate(base.ref, by="rita", reason="roll back")  # rollback in one act
    assert resolve_model_card(None).weights_sha256 == base.sha256


def test_data_that_cannot_train_is_refused_with_the_reason(qtbot, window, tmp_path):
    wizard = open_wizard(qtbot, window)
    wizard.data_page.add_folder(class_folders(tmp_path / "one-class", per_class=10, classes=("Benign",)))
    qtbot.waitUntil(lambda: wizard.data_page.survey is not None, timeout=30_000)
    assert not wizard.data_page.isComplete()
    assert "no labelled images of Early, Pre, Pro" in wizard.data_page.problems_label.text()
    assert wizard.data_page.counts_table.item(0, 1).text() == "10"


def test_cancel_stops_the_training_and_changes_nothing(qtbot, window, base, tmp_path):
    wizard = open_wizard(qtbot, window)
    to_training(qtbot, wizard, class_folders(tmp_path / "labelled", per_class=10), epochs=200)
    page = wizard.training_page
    qtbot.waitUntil(lambda: bool(page.plot.loss), timeout=TRAINING_TIMEOUT_MS)
    page.toggle_pause()
    assert page.pause_button.text() == "Resume"
    page.cancel_training()
    qtbot.waitUntil(lambda: page.state == "cancelled", timeout=60_000)
    assert not page.isComplete() and "Nothing was changed" in page.status_label.text()
    assert ModelLibrary().active().sha256 == base.sha256
    assert [m.card.id for m in ModelLibrary().models()].count("lab-model") == 0


def test_a_killed_training_resumes_when_the_wizard_opens_again(qtbot, window, tmp_path, monkeypatch):
    wizard = open_wizard(qtbot, window)
    to_training(qtbot, wizard, class_folders(tmp_path / "labelled", per_class=10), epochs=4)
    page = wizard.training_page
    qtbot.waitUntil(lambda: len(page.plot.val_acc) >= 1, timeout=TRAINING_TIMEOUT_MS)
    page.process.kill()  # as a crash would
    qtbot.waitUntil(lambda: page.process is None, timeout=30_000)
    assert page.state == "failed" and "resume" in page.status_label.text()
    run_dir = page.run_dir
    wizard.reject()
    assert interrupted_runs() == [run_dir]
    monkeypatch.setattr(gui_dialogs, "confirm", lambda *a, **k: True)

    def resumed(w: RetrainWizard):
        w.show()
        assert w.currentId() == TRAINING and w.training_page.run_dir == run_dir
        qtbot.waitUntil(w.training_page.isComplete, timeout=TRAINING_TIMEOUT_MS)
        w.next()
        w.next()
        w.accept()

    drive_dialog(monkeypatch, RetrainWizard, resumed)
    assert window.open_retrain_wizard()
    assert "resumed" in [e.get("phase") for e in job.read_events(run_dir)]
    assert ModelLibrary().active().card.id == "lab-model" and window.model_card.id == "lab-model"


def test_a_candidate_worse_on_the_reference_set_needs_a_typed_reason(qtbot, tmp_path):
    import json

    from gui.retrain_compare_page import ComparePage, PromotePage

    def figures(acc: float) -> dict:
        return {"accuracy": acc, "recall": dict.fromkeys(("Benign", "Early", "Pre", "Pro"), acc), "ece": 0.05,
                "flagged_fraction": 0.3, "per_class": {c: {"support": 5} for c in ("Benign", "Early", "Pre", "Pro")},
                "confusion_matrix": [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 5]]}

    report = {"reference": {"current": figures(0.9), "candidate": figures(0.8), "regressions": ["accuracy 80.0 % vs 90.0 %"]}}
    (tmp_path / job.COMPARE_FILE).write_text(json.dumps(report))
    compare = ComparePage()
    compare.run_dir = tmp_path
    qtbot.addWidget(compare)
    compare.initializePage()
    assert compare.worse_on_reference() and (0, 2) in compare.red_cells  # accuracy, the new model: red
    assert "Worse on the reference set" in compare.regressions_label.text()
    assert compare.confusion_row.count() == 2  # the reference set's matrices, current and new, as grids
    compare.initializePage()  # visiting the step again rebuilds them, it does not add more
    assert compare.confusion_row.count() == 2
    promote = PromotePage(compare)
    qtbot.addWidget(promote)
    promote.initializePage()
    assert not promote.isComplete() and "type why" in promote.info_label.text()
    promote.reason_edit.setText("our reference images differ; accepted by the lab head")
    assert promote.isComplete()
    refused = PromotePage(compare, refusal="your role (technician) may not change the model")
    qtbot.addWidget(refused)
    refused.initializePage()
    assert not refused.isComplete() and "cannot promote" in refused.info_label.text()


def test_the_wizard_and_the_model_manager_never_import_torch_into_the_gui_process():
    import subprocess
    import sys

    code = ("import sys, gui.retrain_wizard, gui.models_dialog, gui.model_flow, engine.models.library, "
            "engine.training.job, engine.training.compare, engine.training.lab_training; "
            "engine.training.job.estimate_seconds(engine.training.job.JobSpec(), 40, 1600); "  # the Settings step
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0
