"""The desktop workflow end to end: classify (batch queue), results, review, sign-off, history,
pause/resume/cancel, crash resume, settings and export — with a tiny 32 px model."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from engine.core.identity import os_identity
from engine.core.jobs import JobState
from engine.store.results import ResultStore, StoreError, default_db_path
from gui import dialogs as gui_dialogs
from gui.scrolling import current_panel
from tests.gui.conftest import (
    drive_dialog,
    make_sample_folder,
    make_window,
    open_sample,
    slow_classification,
    wait_classified,
)

#: Who the window acts as when the lab does not require accounts: this computer's login.
ME = os_identity().user


def _store_predictions(sample_id):
    with ResultStore.open(default_db_path()) as store:
        return store.predictions(sample_id)


def record_classified_paths(monkeypatch) -> list[list]:
    """Spy on the batch's classifier process: returns the list each job's paths are appended to."""
    from engine.inference.process import ClassifierProcess

    seen: list[list] = []
    original = ClassifierProcess.classify_paths

    def spy(self, paths, **kwargs):
        paths = list(paths)
        seen.append(paths)
        return original(self, paths, **kwargs)

    monkeypatch.setattr(ClassifierProcess, "classify_paths", spy)
    return seen


def _classify(qtbot, window, folder, count=1):
    sample = open_sample(qtbot, window, folder, count)
    job = window.classify_current()
    assert job is not None
    wait_classified(qtbot, window, sample)
    return sample


def test_classify_folder_with_a_broken_image(qtbot, wf_window, tmp_path, dialogs):
    win = wf_window
    folder = make_sample_folder(tmp_path, "S-100", count=4, size=64, broken=True)
    sample = _classify(qtbot, win, folder)
    rows = win.results_panel.model.rows
    assert len(rows) == len(sample.images) == 5
    errors = [r for r in rows if not r.ok]
    assert [r.file_name for r in errors] == ["cell_99.jpg"] and errors[0].error
    assert all(r.predicted_class for r in rows if r.ok)
    summary = win.results_panel.summary
    assert summary.n_error == 1 and summary.n_images == 5
    assert win.results_panel.summary_box.call_label.text()
    # committed to the store as they came, with the model's identity
    stored = _store_predictions("S-100")
    assert len(stored) == 5 and {p.model_id for p in stored} == {"tiny"}
    # the status bar names the device; the queue shows the finished job
    assert win.device_label.text() == "Device: CPU (ONNX Runtime)"
    assert win.queue_panel.overall_bar.format() == "5/5"
    assert "Done" in win.queue_panel.table.item(0, 1).text()
    assert dialogs == []  # a broken image is an error row, not a dialog
    assert current_panel(win.side_tabs) is win.results_panel


def test_filter_by_class_and_flag(qtbot, wf_window, tmp_path):
    win = wf_window
    _classify(qtbot, win, make_sample_folder(tmp_path, "S-filter", count=6, size=48, broken=True))
    rp = win.results_panel
    rows = rp.model.rows
    cls = next(r.predicted_class for r in rows if r.ok)
    rp.class_combo.setCurrentIndex(rp.class_combo.findData(cls))
    assert rp.proxy.rowCount() == sum(1 for r in rows if r.ok and r.predicted_class == cls)
    rp.class_combo.setCurrentIndex(rp.class_combo.findData("__error__"))
    assert rp.proxy.rowCount() == 1
    rp.class_combo.setCurrentIndex(0)
    rp.flag_combo.setCurrentIndex(rp.flag_combo.findData("errors"))
    assert rp.proxy.rowCount() == 1
    assert rp.shown_label.text() == "1 of 7 shown"
    rp.flag_combo.setCurrentIndex(rp.flag_combo.findData("to_review"))
    assert rp.proxy.rowCount() == sum(1 for r in rows if r.flagged)
    rp.flag_combo.setCurrentIndex(0)
    assert rp.proxy.rowCount() == len(rows)
    # sorting by confidence puts the lowest first
    rp.table.sortByColumn(2, Qt.SortOrder.AscendingOrder)
    confs = [rp.proxy.data(rp.proxy.index(i, 0), Qt.ItemDataRole.UserRole + 2).confidence for i in range(len(rows))]
    assert confs[0] is None and confs[1:] == sorted(confs[1:])


def test_review_with_keyboard_then_sign_off(qtbot, wf_window, tmp_path, monkeypatch):
    from gui import dialogs as gui_dialogs

    win = wf_window
    sample = _classify(qtbot, win, make_sample_folder(tmp_path, "S-review", count=4, size=48, broken=True))
    rp = win.results_panel
    table = rp.table
    assert rp.summary.n_flagged_unreviewed == 5  # random tiny model: every image is low confidence
    # sign-off is refused while flagged images remain
    assert not rp.sign_off_button.isEnabled()
    assert "5 flagged image(s) left to review" in rp.sign_state_label.text()
    assert win.sign_off() is False

    table.setFocus()
    qtbot.waitUntil(table.hasFocus)
    assert rp.current_result().file_name == "cell_01.png"  # the row of the image on show
    qtbot.keyClick(table, Qt.Key.Key_N)  # next flagged image; the viewer follows
    assert rp.current_result().file_name == "cell_02.png"
    qtbot.waitUntil(lambda: win.current_row == 1 and win.current_rgb is not None, timeout=5000)
    rp.select_proxy_row(0)

    def latest(row):  # rows are immutable records: a review replaces the row
        return rp.model.row_data(rp.model.row_of(row.path))

    first = rp.current_result()
    assert first is not None and first.file_name == "cell_01.png"
    qtbot.waitUntil(lambda: win.current_row == 0 and win.current_rgb is not None, timeout=5000)
    qtbot.keyClick(table, Qt.Key.Key_2)  # Early
    assert latest(first).final_class == "Early" and latest(first).reviewed_by == ME
    second = rp.current_result()  # moved on to the next flagged image
    assert second is not first and second.file_name == "cell_02.png"
    qtbot.waitUntil(lambda: win.current_row == 1, timeout=5000)  # the viewer follows
    qtbot.keyClick(table, Qt.Key.Key_Return)  # confirm the model's class
    assert latest(second).final_class == second.predicted_class and not latest(second).overridden
    third = rp.current_result()
    qtbot.keyClick(table, Qt.Key.Key_4)
    assert latest(third).final_class == "Pro"
    fourth = rp.current_result()
    qtbot.keyClick(table, Qt.Key.Key_1)
    assert latest(fourth).final_class == "Benign"
    broken = rp.current_result()
    assert not broken.ok
    qtbot.keyClick(table, Qt.Key.Key_Return)  # an error cannot be confirmed...
    assert not latest(broken).reviewed
    qtbot.keyClick(table, Qt.Key.Key_X)  # ...only excluded
    assert latest(broken).final_class == "Excluded"

    # stored beside the model output, with the reviewer
    stored = {p.file_name: p for p in _store_predictions("S-review")}
    assert stored["cell_01.png"].final_class == "Early" and stored["cell_01.png"].reviewed_by == ME
    assert stored["cell_01.png"].predicted_class == first.predicted_class
    assert stored["cell_99.jpg"].final_class == "Excluded"
    assert rp.model.data(rp.model.index(0, 7)) == ("overridden" if latest(first).overridden else "")

    # now it can be signed off
    assert rp.summary.n_flagged_unreviewed == 0
    assert rp.sign_off_button.isEnabled()
    from gui.sign_off_dialog import SignOffDialog

    shown: list[tuple[str, str, str, bool]] = []

    def answer(sign: bool):
        def step(dialog):
            shown.append((dialog.windowTitle(), dialog.statement_label.text(), dialog.signer_label.text(),
                          dialog.password_edit.isVisibleTo(dialog)))
            dialog.accept() if sign else dialog.reject()
        return step

    drive_dialog(monkeypatch, SignOffDialog, answer(False), answer(True), answer(True))
    assert win.sign_off() is False and not sample.signed_off  # the statement was shown; Cancel
    title, statement, signer, asks_password = shown[0]
    assert title == "Sign off sample S-review"
    assert statement.startswith("I have reviewed the 5 flagged images of sample S-review")
    assert signer == f"Signed as {ME}." and not asks_password  # no accounts: the OS login signs
    # the lab's rule "someone else signs": ME classified it, so ME may not sign it
    win.settings = win.settings.replace(require_independent_reviewer=True)
    assert win.sign_off() is False and not sample.signed_off
    assert "classified" in win.statusBar().currentMessage()
    win.settings = win.settings.replace(require_independent_reviewer=False)
    qtbot.mouseClick(rp.sign_off_button, Qt.MouseButton.LeftButton)
    assert sample.signed_off and sample.signed_off_by == ME
    with ResultStore.open(default_db_path()) as store:
        assert store.get_sample("S-review").sign_off_statement == statement
    assert rp.locked and f"Signed off by {ME}" in rp.sign_state_label.text()
    assert win.samples_panel.sample_id_edit.isReadOnly()
    # a signed-off sample refuses edits until reopened
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_3)
    assert latest(broken).final_class == "Excluded"
    assert not win.act_classify.isEnabled()
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda *a, **k: "")
    assert win.reopen() is False and sample.signed_off  # a reason is required
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda *a, **k: "second opinion")
    qtbot.mouseClick(rp.reopen_button, Qt.MouseButton.LeftButton)
    assert not sample.signed_off and not rp.locked
    assert not win.samples_panel.sample_id_edit.isReadOnly()
    with ResultStore.open(default_db_path()) as store:
        actions = [a.action for a in store.audit("S-review")]
        reopen = next(a for a in store.audit("S-review") if a.action == "reopen")
    assert actions.count("record_review") == 5 and "sign_off" in actions
    assert reopen.details["reason"] == "second opinion"


def test_history_is_back_after_reopening_the_app(qtbot, wf_settings, tmp_path):
    folder = make_sample_folder(tmp_path, "S-hist", count=3, size=48)
    win = make_window(qtbot, wf_settings)
    try:
        sample = _classify(qtbot, win, folder)
        win.samples_panel.patient_id_edit.setText("P-42")
        win.samples_panel.patient_id_edit.textEdited.emit("P-42")
        win.samples_panel.patient_id_edit.editingFinished.emit()
        path = win.results_panel.model.rows[1].path
        assert win.review(path, "Pre")
        n_rows = len(win.results_panel.model.rows)
    finally:
        win.close()
    assert sample.store_id == "S-hist"

    win2 = make_window(qtbot, wf_settings)
    try:
        panel = win2.samples_panel
        assert [s.sample_id for s in panel.samples] == ["S-hist"]
        back = panel.samples[0]
        assert back.from_history and back.patient_id == "P-42" and len(back.images) == 3
        assert "classified" in panel.sample_list.item(0).text()
        panel.select_sample(back)
        rp = win2.results_panel
        qtbot.waitUntil(lambda: rp.model.rowCount() == n_rows, timeout=10000)
        reviewed = rp.model.rows[rp.model.row_of(path)]
        assert reviewed.final_class == "Pre" and reviewed.reviewed_by == ME
        # reopening the same folder selects the stored sample instead of adding another
        win2.open_paths([folder])
        qtbot.wait(200)
        assert len(panel.samples) == 1
    finally:
        win2.shutdown()


def test_pause_resume_and_cancel(qtbot, wf_window, tmp_path, monkeypatch):
    slow_classification(monkeypatch, 0.15)
    win = wf_window
    win.batch.batch_size = 2
    n = 40  # several seconds of work: a loaded machine must not finish it before Cancel lands
    sample = open_sample(qtbot, win, make_sample_folder(tmp_path, "S-long", count=n, size=40))
    job = win.classify_current()
    qp = win.queue_panel
    qtbot.waitUntil(lambda: job.run_done >= 2, timeout=20000)
    qtbot.mouseClick(qp.pause_button, Qt.MouseButton.LeftButton)
    assert win.batch.paused and qp.resume_button.isEnabled() and not qp.pause_button.isEnabled()
    qtbot.wait(400)  # the image in progress may finish
    held = job.done
    qtbot.wait(500)
    assert job.done == held < n
    qtbot.waitUntil(lambda: qp.table.item(0, 1).text() == "Paused", timeout=3000)
    assert "images/s" in qp.overall_label.text() or "Paused" in qp.overall_label.text()
    qtbot.mouseClick(qp.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: job.done > held, timeout=10000)
    assert job.rate is not None and job.rate > 0
    monkeypatch.setattr(gui_dialogs, "confirm", lambda *a: True)  # "Stop classifying?" -> Stop
    qtbot.mouseClick(qp.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.batch.running, timeout=10000)
    assert job.state == "cancelled"
    stopped_at = job.done
    assert stopped_at < n
    assert len(_store_predictions("S-long")) == stopped_at == win.results_panel.model.rowCount()
    assert "stopped" in win.samples_panel.sample_list.item(0).text() or sample.status_note.endswith("(stopped)")
    win.results.update_note(sample)  # a later reload of the table (e.g. live updates catching up)...
    assert sample.status_note.endswith("(stopped)")  # ...keeps what the ended job said
    # Start carries on with what is left only
    seen = record_classified_paths(monkeypatch)
    qtbot.mouseClick(qp.start_button, Qt.MouseButton.LeftButton)
    wait_classified(qtbot, win, sample)
    assert len(seen) == 1 and len(seen[0]) == n - stopped_at


def test_crash_mid_batch_resumes_only_pending_images(qtbot, wf_settings, tmp_path, monkeypatch):

    slow_classification(monkeypatch, 0.15)
    folder = make_sample_folder(tmp_path, "S-crash", count=24, size=40)  # seconds of work
    win = make_window(qtbot, wf_settings)
    win.batch.batch_size = 2
    sample = open_sample(qtbot, win, folder)
    job = win.classify_current()
    qtbot.waitUntil(lambda: job.done >= 3, timeout=20000)
    win.shutdown()  # the app goes away mid-batch (the store has every result committed so far)
    win.hide()
    k = len(_store_predictions("S-crash"))
    assert 3 <= k < 24

    seen = record_classified_paths(monkeypatch)
    win2 = make_window(qtbot, wf_settings)
    try:
        back = win2.samples_panel.samples[0]
        assert back.store_id == "S-crash" and f"{k}/24 classified" in win2.samples_panel.sample_list.item(0).text()
        win2.samples_panel.select_sample(back)
        qtbot.waitUntil(lambda: win2.results_panel.model.rowCount() == k, timeout=10000)
        win2.classify_current()
        wait_classified(qtbot, win2, back)
        assert len(seen) == 1 and len(seen[0]) == 24 - k
        done_before = {p.path for p in _store_predictions("S-crash")}
        assert len(done_before) == 24
    finally:
        win2.shutdown()
    assert sample.store_id == "S-crash"


def test_queue_add_reorder_remove(qtbot, wf_window, tmp_path):
    win = wf_window
    a = open_sample(qtbot, win, make_sample_folder(tmp_path, "Q-A", count=2, size=40), 1)
    win.queue_current()
    b = open_sample(qtbot, win, make_sample_folder(tmp_path, "Q-B", count=2, size=40), 2)
    qp = win.queue_panel
    qtbot.mouseClick(qp.add_button, Qt.MouseButton.LeftButton)
    assert [j.sample for j in win.batch.jobs] == [a, b]
    assert win.samples_panel.sample_id_edit.isReadOnly()  # queued: the ID is fixed meanwhile
    qp.select_job(win.batch.jobs[1])
    qtbot.mouseClick(qp.up_button, Qt.MouseButton.LeftButton)
    assert [j.sample for j in win.batch.jobs] == [b, a]
    qp.select_job(win.batch.jobs[1])
    qtbot.mouseClick(qp.remove_button, Qt.MouseButton.LeftButton)
    assert [j.sample for j in win.batch.jobs] == [b]
    assert qp.start_button.isEnabled()
    qtbot.mouseClick(qp.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.batch.running and win.batch.jobs[0].state == "done", timeout=20000)
    assert len(_store_predictions("Q-B")) == 2
    with ResultStore.open(default_db_path()) as store:
        assert store.predictions("Q-A") == []


def _drop_on_row(table, row: int, lower_half: bool) -> None:
    """Drop the selected row of ``table`` on ``row`` (its upper or lower half), as a mouse
    drag would end."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QDropEvent

    rect = table.visualRect(table.model().index(row, 0))
    y = rect.bottom() - 2 if lower_half else rect.top() + 2
    mime = table.model().mimeData(table.selectionModel().selectedIndexes())
    event = QDropEvent(QPoint(rect.center().x(), y).toPointF(), Qt.DropAction.MoveAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    table.dropEvent(event)


def test_queue_rows_can_be_dragged_to_reorder(qtbot, wf_window, tmp_path):
    win = wf_window
    samples = []
    for i, name in enumerate(("D-A", "D-B", "D-C")):
        samples.append(open_sample(qtbot, win, make_sample_folder(tmp_path, name, count=1, size=40), i + 1))
        win.queue_current()
    a, b, c = samples
    qp = win.queue_panel
    assert [j.sample for j in win.batch.jobs] == [a, b, c]
    qp.select_job(win.batch.jobs[0])
    _drop_on_row(qp.table, 2, lower_half=True)  # A below C: to the end
    assert [j.sample for j in win.batch.jobs] == [b, c, a]
    assert qp.selected_job().sample is a  # the moved row stays selected
    assert [qp.table.item(r, 0).text() for r in range(3)] == [j.label for j in win.batch.jobs]
    _drop_on_row(qp.table, 0, lower_half=False)  # A above B: to the front
    assert [j.sample for j in win.batch.jobs] == [a, b, c]
    qp.select_job(win.batch.jobs[1])
    _drop_on_row(qp.table, 1, lower_half=True)  # B onto itself: nothing moves
    assert [j.sample for j in win.batch.jobs] == [a, b, c]


def test_heatmap_is_computed_on_request(qtbot, wf_window, tmp_path):
    win = wf_window
    _classify(qtbot, win, make_sample_folder(tmp_path, "S-heat", count=2, size=64))
    win.samples_panel.set_current_row(1)
    qtbot.waitUntil(lambda: win.current_row == 1 and win.current_rgb is not None, timeout=5000)
    act = win.viewer_panel.act_heatmap
    qtbot.waitUntil(act.isEnabled, timeout=5000)
    assert not win.viewer.has_heatmap()
    act.setChecked(True)
    qtbot.waitUntil(win.viewer.has_heatmap, timeout=15000)
    assert win.viewer.heatmap_visible()
    # it stays on for the next image
    win.samples_panel.set_current_row(0)
    qtbot.waitUntil(lambda: win.current_row == 0 and win.viewer.has_heatmap(), timeout=15000)
    assert act.isChecked()


def test_sample_edits_are_saved_and_audited(qtbot, wf_window, tmp_path):
    win = wf_window
    sample = _classify(qtbot, win, make_sample_folder(tmp_path, "S-edit", count=1, size=40))
    panel = win.samples_panel
    panel.sample_id_edit.clear()
    qtbot.keyClicks(panel.sample_id_edit, "LAB-9")
    panel.sample_id_edit.editingFinished.emit()
    panel.patient_id_edit.setText("P-7")
    panel.patient_id_edit.textEdited.emit("P-7")
    panel.patient_id_edit.editingFinished.emit()
    assert sample.store_id == "LAB-9"
    with ResultStore.open(default_db_path()) as store:
        stored = store.get_sample("LAB-9")
        assert stored is not None and stored.patient_id == "P-7"
        assert store.get_sample("S-edit") is None
        assert [a.action for a in store.audit("LAB-9")].count("update_sample") == 2
    assert "LAB-9" in win.results_panel.title_label.text()


def test_no_model_installed_says_so(qtbot, tmp_path, dialogs):
    from gui.settings import Settings

    win = make_window(qtbot, Settings(active_model="no-such-model"))
    try:
        assert "No model installed" in win.model_label.text()
        open_sample(qtbot, win, make_sample_folder(tmp_path, "S-nomodel", count=1, size=40))
        assert not win.act_classify.isEnabled()
        assert win.classify_current() is None
        assert dialogs and "No model available" in dialogs[-1]["text"]
        assert win.batch.jobs == []
    finally:
        win.shutdown()


def test_broken_model_file_fails_the_job_through_the_error_path(qtbot, tmp_path, dialogs):
    from gui.settings import Settings
    from tests.conftest import save_tiny_model

    card = save_tiny_model(tmp_path / "bad", model_id="bad")
    card.weights_path.write_bytes(card.weights_path.read_bytes()[:-64] + b"\0" * 64)
    win = make_window(qtbot, Settings(active_model=str(card.weights_path)))
    try:
        sample = open_sample(qtbot, win, make_sample_folder(tmp_path, "S-bad", count=1, size=40))
        job = win.classify_current()
        qtbot.waitUntil(lambda: not win.batch.running and job.state == "failed", timeout=20000)
        qtbot.waitUntil(lambda: bool(dialogs), timeout=5000)
        assert "corrupt" in dialogs[-1]["text"] and "Traceback" in dialogs[-1]["details"]
        assert win.error_button.isVisible() and "1 error" in win.error_button.text()
        assert "Failed" in win.queue_panel.table.item(0, 1).text()
        assert win.isVisible() and sample.store_id == "S-bad"
    finally:
        win.shutdown()


def test_settings_dialog_edits_and_applies(qtbot, wf_window, tiny_model_path, monkeypatch):
    from gui import settings_dialog
    from gui.settings import load_settings
    from gui.settings_dialog import FILE_CHOICE, SettingsDialog

    dlg = SettingsDialog(wf_window.settings)
    qtbot.addWidget(dlg)
    assert dlg.model_combo.currentData() == FILE_CHOICE
    assert dlg.model_path_edit.text() == str(tiny_model_path)
    assert "tiny 0.0.1" in dlg.model_info.text() and "0.500" in dlg.threshold_edit.placeholderText()
    dlg.model_combo.setCurrentIndex(dlg.model_combo.findData("baseline"))
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    assert dlg.precision_combo.currentData() == "auto"
    dlg.precision_combo.setCurrentIndex(dlg.precision_combo.findData("fp32"))
    dlg.threshold_edit.setText("0.3")
    dlg.lab_edit.setText("Lab 5")
    assert not hasattr(dlg, "operator_edit")  # who reviews is the window's identity, not a setting
    edited = dlg.settings()
    assert (edited.active_model, edited.device, edited.precision, edited.review_threshold_override,
            edited.lab_name) == ("baseline", "cpu", "fp32", 0.3, "Lab 5")
    dlg.threshold_edit.setText("")
    assert dlg.settings().review_threshold_override is None
    dlg.model_combo.setCurrentIndex(dlg.model_combo.findData(FILE_CHOICE))
    dlg.model_path_edit.clear()
    dlg._accept()
    assert dlg.error_label.isVisibleTo(dlg) and not dlg.result()

    monkeypatch.setattr(settings_dialog, "edit_settings",
                        lambda parent, s, **k: s.replace(review_threshold_override=0.2, lab_name="Lab 5",
                                                         precision="fp32"))
    wf_window.act_settings.trigger()
    saved = load_settings()
    assert saved.review_threshold_override == 0.2 and saved.lab_name == "Lab 5" and saved.precision == "fp32"
    assert wf_window.model_host.spec.review_threshold == 0.2
    assert wf_window.model_host.spec.precision == "fp32"  # the classifier process is started with it
    assert "overridden in the settings: 0.200" in wf_window.model_label.toolTip()


def test_review_threshold_override_applies_to_classification(qtbot, wf_settings, tmp_path):
    win = make_window(qtbot, wf_settings.replace(review_threshold_override=0.0))
    try:
        _classify(qtbot, win, make_sample_folder(tmp_path, "S-thr", count=3, size=40))
        assert all(not r.needs_review for r in win.results_panel.model.rows)
        assert win.results_panel.sign_off_button.isEnabled()  # nothing flagged: ready at once
    finally:
        win.shutdown()


def test_export_csv_json_pdf(qtbot, wf_window, tmp_path, monkeypatch):
    import json

    from gui import dialogs as gui_dialogs
    from gui.settings import load_settings

    win = wf_window
    win.update_settings(lab_name="Haematology Lab")
    _classify(qtbot, win, make_sample_folder(tmp_path, "S-exp", count=2, size=48, broken=True))
    win.review(win.results_panel.model.rows[2].path, "Excluded")
    out = tmp_path / "exports"
    out.mkdir()
    for suffix in (".csv", ".json", ".pdf"):
        target = out / f"S-exp{suffix}"
        monkeypatch.setattr(gui_dialogs, "choose_export_file", lambda *a, t=target: str(t))
        assert win.export_current()
        qtbot.waitUntil(target.exists, timeout=30000)
    data = json.loads((out / "S-exp.json").read_text())
    assert data["sample_id"] == "S-exp" and data["lab_name"] == "Haematology Lab"
    assert len(data["images"]) == 3
    assert data["summary"]["call"].startswith(win.results_panel.summary.call)
    assert data["summary"]["counts"] == win.results_panel.summary.counts  # the excluded image not counted
    assert (out / "S-exp.pdf").read_bytes()[:5] == b"%PDF-"
    assert "S-exp" in (out / "S-exp.csv").read_text()
    assert load_settings().last_export_dir == str(out)
    def exports():  # each export is in the audit trail, under who acted (recorded once the file is written)
        with ResultStore.open(default_db_path()) as store:
            return [(e.actor, e.sample_id, e.details) for e in store.audit(action="export")]

    qtbot.waitUntil(lambda: len(exports()) == 3, timeout=10000)
    assert exports() == [(ME, "S-exp", {"kind": kind, "path": str(out / f"S-exp.{kind}")})
                       for kind in ("csv", "json", "pdf")]


def test_close_while_classifying_asks_first_and_then_stops_cleanly(qtbot, wf_settings, tmp_path, monkeypatch):
    slow_classification(monkeypatch, 0.1)
    win = make_window(qtbot, wf_settings)
    win.batch.batch_size = 2
    open_sample(qtbot, win, make_sample_folder(tmp_path, "S-close", count=8, size=40))
    job = win.classify_current()
    qtbot.waitUntil(lambda: job.done >= 1, timeout=20000)
    asked: list[tuple[str, str, str]] = []
    answer = [False]

    def confirm(parent, title, text, yes, no):
        asked.append((title, text, yes))
        return answer[0]

    monkeypatch.setattr(gui_dialogs, "confirm", confirm)
    win.close()  # "Keep classifying"
    assert win.isVisible() and win.batch.running and not win._closed
    title, text, yes = asked[0]
    assert (title, yes) == ("Quit ALLSight?", "Quit")
    assert "Sample S-close is being classified" in text and "saved" in text and "resumes" in text
    answer[0] = True
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 5
    assert not win.batch.running and win.workers.pending == 0


def test_cancel_in_the_queue_asks_first(qtbot, wf_settings, tmp_path, monkeypatch):
    slow_classification(monkeypatch, 0.1)
    win = make_window(qtbot, wf_settings)
    win.batch.batch_size = 2
    open_sample(qtbot, win, make_sample_folder(tmp_path, "S-cancel", count=8, size=40))
    job = win.classify_current()
    qtbot.waitUntil(lambda: job.done >= 1, timeout=20000)
    answers = iter([False, True])
    asked: list[str] = []
    monkeypatch.setattr(gui_dialogs, "confirm", lambda parent, title, text, yes, no: asked.append(yes) or next(answers))
    win.queue_panel.cancel_button.click()
    assert job.state == JobState.RUNNING and asked == ["Stop"]
    win.queue_panel.cancel_button.click()
    qtbot.waitUntil(lambda: not win.batch.running, timeout=20000)
    assert job.state == JobState.CANCELLED and asked == ["Stop", "Stop"]
    win.close()  # nothing running: no question
    assert asked == ["Stop", "Stop"]


def test_unusable_result_database_still_opens_the_window(qtbot, wf_settings, tmp_path, monkeypatch, dialogs):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("ALLSIGHT_DATA_DIR", str(blocker))
    win = make_window(qtbot, wf_settings)
    try:
        assert win.store is None and win.store_error
        assert "Result history unavailable" in win.statusBar().currentMessage()
        open_sample(qtbot, win, make_sample_folder(tmp_path, "S-nostore", count=1, size=40))
        assert win.classify_current() is None
        assert dialogs and "result history cannot be used" in dialogs[-1]["text"]
        assert win.isVisible()
    finally:
        win.shutdown()


def test_model_warm_up_loads_the_active_model_in_the_background(qtbot, wf_window):
    assert wf_window.model_host.loaded() is None
    wf_window.warm_up_model()
    qtbot.waitUntil(lambda: wf_window.model_host.loaded() is not None, timeout=30000)
    assert wf_window.model_host.loaded().card.id == "tiny"
    loaded = wf_window.model_host.loaded()
    wf_window.warm_up_model()  # already loaded: nothing more to do
    assert wf_window.model_host.loaded() is loaded


_KILLED_APP = r"""
import sys
from PySide6.QtCore import QTimer
from engine.inference.process import ClassifierProcess
from tests.gui.fakes import slowed

ClassifierProcess.classify_paths = slowed(ClassifierProcess.classify_paths, 0.25)  # killed mid-batch
from gui.app import create_application
from gui.main_window import MainWindow
from gui.settings import Settings

app = create_application([])
win = MainWindow(Settings(active_model=sys.argv[1], device="cpu"))
win.batch.batch_size = 2
win.show()

def step():
    if not win.history_loaded:
        QTimer.singleShot(50, step)
    elif win.samples_panel.current_sample() is None:
        if not getattr(win, "_opened", False):
            win._opened = True
            win.open_paths([sys.argv[2]])
        QTimer.singleShot(50, step)
    else:
        win.classify_current()
        print("CLASSIFYING", flush=True)

QTimer.singleShot(0, step)
app.exec()
"""


def test_killed_app_loses_no_stored_result_and_resumes(qtbot, wf_settings, tmp_path, monkeypatch):
    """SIGKILL the real app process mid-batch; a new app shows every committed result and
    classifies only the rest."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    folder = make_sample_folder(tmp_path, "S-kill", count=24, size=40)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), QT_QPA_PLATFORM="offscreen", ALLSIGHT_NO_WARMUP="1")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_APP, wf_settings.active_model, str(folder)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        k = 0
        while time.time() < deadline and proc.poll() is None:
            try:
                k = len(_store_predictions("S-kill"))
            except StoreError:  # no database or no such sample yet
                k = 0
            if k >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the app exited early: {proc.stderr.read()[-2000:]}"
        assert k >= 3, "the app never stored a result"
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown code runs
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    db = sqlite3.connect(default_db_path())
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    stored = {p.path for p in _store_predictions("S-kill")}
    assert 3 <= len(stored) < 24  # committed as they came; the kill came mid-batch

    seen = record_classified_paths(monkeypatch)
    win = make_window(qtbot, wf_settings)
    try:
        back = win.samples_panel.samples[0]
        assert back.store_id == "S-kill"
        assert f"{len(stored)}/24 classified" in win.samples_panel.sample_list.item(0).text()
        win.samples_panel.select_sample(back)
        win.classify_current()
        wait_classified(qtbot, win, back)
        assert len(seen) == 1 and len(seen[0]) == 24 - len(stored)
        assert not {str(p) for p in seen[0]} & stored  # nothing stored is classified again
        assert len({p.path for p in _store_predictions("S-kill")}) == 24
    finally:
        win.shutdown()


def test_the_audit_trail_opens_from_the_file_menu(qtbot, wf_window, tmp_path, monkeypatch):
    from gui.audit_dialog import AuditDialog

    shown: list[AuditDialog] = []
    monkeypatch.setattr(AuditDialog, "exec", lambda self: shown.append(self) or 0)
    _classify(qtbot, wf_window, make_sample_folder(tmp_path, "S-audit", count=2, size=40))
    assert wf_window.act_audit in wf_window.file_menu.actions()
    wf_window.act_audit.trigger()
    assert len(shown) == 1 and shown[0].parent() is wf_window


def test_closing_a_sample_keeps_its_stored_results_and_is_refused_while_it_is_queued(qtbot, wf_window, tmp_path):
    win = wf_window
    sample = _classify(qtbot, win, make_sample_folder(tmp_path, "S-close2", count=2, size=40))
    other = open_sample(qtbot, win, make_sample_folder(tmp_path, "S-other", count=1, size=40), count=2)
    win.queue_sample(other)  # queued, not started
    assert win.samples_panel.current_sample() is other and other is not sample
    assert win.close_current_sample() is False and other in win.samples_panel.samples
    win.batch.remove(win.batch.job_for(other))
    assert win.close_current_sample() and other not in win.samples_panel.samples
    win.samples_panel.select_sample(sample)
    assert win.close_current_sample() and win.samples_panel.samples == []
    assert len(_store_predictions("S-close2")) == 2  # nothing deleted
