"""Main window: title, opening sample folders (dialog, drop, command line), thumbnails, navigation."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from engine import __version__
from gui.settings import load_settings
from gui.thumbnails import ThumbnailModel
from gui.workbench import READY, UNREADABLE
from tests.gui.conftest import make_sample_folder, wait_image_shown, wait_sample_loaded


def test_window_title_and_panels(window):
    assert window.windowTitle() == f"ALLSight {__version__} — research use only"
    from gui.main_window import DEFAULT_SIZE, fitting_size

    # the default size, shrunk to the screen, but not below what the panels need (Qt's minimum)
    screen = window.screen().availableGeometry().size().toTuple()
    fit, least = fitting_size(DEFAULT_SIZE, screen), window.minimumSizeHint().toTuple()
    assert (window.width(), window.height()) == (max(fit[0], least[0]), max(fit[1], least[1]))
    for name in ("samples_panel", "viewer_panel", "viewer", "preview_panel", "center_tabs", "splitter",
                 "workers", "file_menu", "view_menu", "model_label"):
        assert getattr(window, name) is not None
    # No shipped model in a fresh checkout: said plainly, no crash.
    if window.model_card is None:
        assert "No model installed" in window.model_label.text()


def test_open_folder_creates_sample_with_thumbnails(qtbot, window, sample_folder):
    window.open_paths([sample_folder])
    wait_sample_loaded(qtbot, window)
    sample = window.samples_panel.samples[0]
    assert sample.sample_id == sample_folder.name == "S-2024-017"
    assert sample.folder == sample_folder
    model = window.samples_panel.thumb_view.model()
    assert isinstance(model, ThumbnailModel)
    assert model.rowCount() == 4
    for row in range(4):
        index = model.index(row)
        assert model.data(index, ThumbnailModel.StateRole) == READY
        assert not model.data(index, Qt.ItemDataRole.DecorationRole).isNull()
    # the first image is shown, and the preview computed for it
    wait_image_shown(qtbot, window, 0)
    qtbot.waitUntil(lambda: window.preview_panel.displayed is not None, timeout=10000)


def test_open_folder_via_menu_dialog(qtbot, window, sample_folder, monkeypatch):
    from gui import dialogs

    monkeypatch.setattr(dialogs, "choose_folders", lambda parent, start: [str(sample_folder)])
    window.act_open.trigger()
    wait_sample_loaded(qtbot, window)
    assert window.samples_panel.samples[0].sample_id == "S-2024-017"
    # the folder is remembered for next time, in the isolated settings file
    assert load_settings().last_open_dir == str(sample_folder.parent)


def test_cancelled_dialog_opens_nothing(qtbot, window):
    window.act_open.trigger()  # QFileDialog.exec is patched to "cancel"
    qtbot.wait(50)
    assert window.samples_panel.samples == []


def test_broken_file_is_shown_unreadable_not_a_crash(qtbot, window, tmp_path, dialogs):
    folder = make_sample_folder(tmp_path, "S-broken", count=2, broken=True)
    window.open_paths([folder])
    wait_sample_loaded(qtbot, window)
    sample = window.samples_panel.samples[0]
    assert len(sample.images) == 3
    broken = [im for im in sample.images if im.state == UNREADABLE]
    assert [im.name for im in broken] == ["cell_99.jpg"]
    assert broken[0].error  # the reason
    model = window.samples_panel.model_for(sample)
    row = model.row_of(broken[0].path)
    tooltip = model.data(model.index(row), Qt.ItemDataRole.ToolTipRole)
    assert "unreadable: " in tooltip and broken[0].error in tooltip
    assert "1 unreadable" in window.samples_panel.images_label.text()
    # selecting it shows the reason in the viewer instead of an image
    window.samples_panel.set_current_row(row)
    qtbot.waitUntil(lambda: not window.viewer.has_image() and window.current_row == row, timeout=5000)
    assert dialogs == []  # an unreadable file is expected, not an error dialog


def test_two_folders_two_samples_and_no_duplicates(qtbot, window, tmp_path):
    a = make_sample_folder(tmp_path, "A-1", count=2)
    b = make_sample_folder(tmp_path, "B-2", count=3)
    window.open_paths([a, b])
    wait_sample_loaded(qtbot, window, 2)
    ids = sorted(s.sample_id for s in window.samples_panel.samples)
    assert ids == ["A-1", "B-2"]
    window.open_paths([a])  # already open: selected, not added again
    qtbot.wait(100)
    assert len(window.samples_panel.samples) == 2
    assert window.samples_panel.current_sample().sample_id == "A-1"


def test_sample_fields_editable_operator_defaults_to_who_acts(qtbot, tmp_path):
    from engine.core.identity import os_identity
    from gui.main_window import MainWindow
    from gui.settings import Settings

    win = MainWindow(Settings())
    qtbot.addWidget(win)
    try:
        win.open_paths([make_sample_folder(tmp_path, "S-9", count=1)])
        wait_sample_loaded(qtbot, win)
        panel = win.samples_panel
        sample = panel.samples[0]
        me = os_identity().name
        assert sample.operator == me and panel.operator_edit.text() == me
        panel.sample_id_edit.clear()
        qtbot.keyClicks(panel.sample_id_edit, "LAB-77")
        qtbot.keyClicks(panel.patient_id_edit, "P-123")
        assert sample.sample_id == "LAB-77" and sample.patient_id == "P-123"
        assert "LAB-77" in panel.sample_list.item(0).text()
        panel.operator_edit.clear()
        qtbot.keyClicks(panel.operator_edit, "M. New")
        panel.operator_edit.editingFinished.emit()
        assert sample.operator == "M. New"  # a description of the sample (who prepared it)...
        assert panel.default_operator == me and not hasattr(load_settings(), "operator_name")  # ...not who acts
    finally:
        win.shutdown()


def test_drop_folder_opens_sample(qtbot, window, sample_folder):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sample_folder))])
    pos = QPointF(window.width() / 2, window.height() / 2)
    # QDragEnterEvent takes an integer QPoint, QDropEvent a QPointF (Qt's own signatures).
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    wait_sample_loaded(qtbot, window)
    assert window.samples_panel.samples[0].sample_id == sample_folder.name


def test_drop_of_non_files_is_refused(window):
    mime = QMimeData()
    mime.setText("hello")
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()


def test_next_previous_keys_move_through_images(qtbot, window, sample_folder):
    window.open_paths([sample_folder])
    wait_sample_loaded(qtbot, window)
    wait_image_shown(qtbot, window, 0)
    viewer = window.viewer
    viewer.setFocus()
    qtbot.waitUntil(viewer.hasFocus)
    first = window.current_rgb
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    wait_image_shown(qtbot, window, 1)
    assert window.current_path.name == "cell_02.png"
    assert not (window.current_rgb == first).all()
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)
    wait_image_shown(qtbot, window, 2)
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    wait_image_shown(qtbot, window, 1)
    qtbot.keyClick(viewer, Qt.Key.Key_PageUp)
    wait_image_shown(qtbot, window, 0)
    qtbot.keyClick(viewer, Qt.Key.Key_Left)  # already first: stays
    qtbot.wait(50)
    assert window.current_row == 0
    assert "1/4" in window.viewer_panel.caption.text()


def test_mask_overlay_toggle(qtbot, window, sample_folder):
    window.open_paths([sample_folder])
    wait_sample_loaded(qtbot, window)
    wait_image_shown(qtbot, window, 0)
    act = window.viewer_panel.act_mask
    assert act.isEnabled()
    act.setChecked(True)
    qtbot.waitUntil(window.viewer.has_mask, timeout=10000)
    assert window.viewer.mask_visible()
    act.setChecked(False)
    assert not window.viewer.mask_visible()


def test_heatmap_toggle_disabled_until_set(qtbot, window, sample_folder):
    import numpy as np

    window.open_paths([sample_folder])
    wait_sample_loaded(qtbot, window)
    wait_image_shown(qtbot, window, 0)
    act = window.viewer_panel.act_heatmap
    assert not act.isEnabled()
    window.viewer.set_heatmap(np.zeros((24, 24, 3), np.uint8))
    assert act.isEnabled()
    act.setChecked(True)
    assert window.viewer.heatmap_visible()
    window.viewer.set_heatmap(None)
    assert not act.isEnabled() and not act.isChecked()


def test_close_stops_workers(qtbot, settings, tmp_path):
    from gui.main_window import MainWindow

    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.open_paths([make_sample_folder(tmp_path, "many", count=12, size=160)])
    qtbot.waitUntil(lambda: len(win.samples_panel.samples) == 1, timeout=10000)
    win.close()  # mid-way through the thumbnails
    assert win.workers.pending == 0


def test_the_first_window_size_fits_a_scaled_screen():
    from gui.main_window import DEFAULT_SIZE, fitting_size

    assert fitting_size(DEFAULT_SIZE, (2560, 1400)) == DEFAULT_SIZE
    assert fitting_size(DEFAULT_SIZE, (1280, 688)) == (1216, 653)  # 1080p at 150 %, a task bar


def test_the_window_fits_a_scaled_screen_and_its_panels_scroll(qtbot, window):
    """At 150 % on 1080p (1280 x 688 logical) and 125 % on 1366 x 768 (1093 x 582) the window's
    minimum fits; the tall and wide panels scroll there instead of being squashed or cut off."""
    from PySide6.QtWidgets import QScrollArea

    least = window.minimumSizeHint()
    assert least.width() <= 1093 and least.height() <= 582, least.toTuple()
    window.resize(least)
    window.show()
    qtbot.waitExposed(window)
    for panel in (window.results_panel, window.preview_panel, window.queue_panel):
        area = panel.parentWidget().parentWidget()  # the panel's parent is the area's viewport
        assert isinstance(area, QScrollArea) and area.widget() is panel
        # never below what the panel needs: the area scrolls instead
        if panel.isVisible():
            assert panel.height() >= panel.minimumSizeHint().height()
            assert panel.width() >= panel.minimumSizeHint().width()


def test_closing_hides_the_window_before_the_model_process_is_stopped(qtbot, window, monkeypatch):
    window.show()
    qtbot.waitExposed(window)
    seen = []
    release = window.model_host.release

    def watching_release():
        seen.append(window.isVisible())
        release()

    monkeypatch.setattr(window.model_host, "release", watching_release)
    window.close()
    assert seen == [False]
