"""Colours that read on light and dark desktops (gui/theme.py)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QStyleFactory, QWidget

from engine import CLASS_IDS
from engine.core.errors import ModelError
from engine.core.records import ImageResult, ReviewedImage
from gui import theme
from gui.batch import BatchQueue
from gui.queue_panel import QueuePanel
from gui.theme import DARK, LIGHT, TEXT_TONES, Tone, contrast_ratio, dark_palette, light_palette
from gui.thumbnails import THUMB_SIZE, ThumbnailModel
from tests.gui.fakes import FakeHost


@pytest.mark.parametrize("tone", TEXT_TONES)
def test_every_text_tone_reads_on_its_window_and_row_colours(qapp, tone):
    for palette, shades in ((light_palette(), LIGHT), (dark_palette(), DARK)):
        for role in (QPalette.ColorRole.Window, QPalette.ColorRole.Base):
            bg = palette.color(role)
            assert contrast_ratio(QColor(shades[tone]), bg) >= 4.5, (tone, shades[tone], bg.name())
    # the old fixed shade on the dark palette is what the issue saw: unreadable
    assert contrast_ratio(QColor("#455a64"), dark_palette().color(QPalette.ColorRole.Window)) < 2


def test_rows_keep_the_palette_text_readable(qapp):
    for palette, shades in ((light_palette(), LIGHT), (dark_palette(), DARK)):
        text = palette.color(QPalette.ColorRole.Text)
        for tone in (Tone.ROW_TO_REVIEW, Tone.ROW_ERROR):
            assert contrast_ratio(text, QColor(shades[tone])) >= 7, (tone, shades[tone])


def test_the_shade_follows_the_palette(qapp):
    assert theme.is_dark(dark_palette()) and not theme.is_dark(light_palette())
    assert theme.color(Tone.ERROR, dark_palette()) == DARK[Tone.ERROR]
    assert theme.color(Tone.ERROR, light_palette()) == LIGHT[Tone.ERROR]


def test_apply_theme_sets_the_dark_palette_and_refuses_unknown_names(qapp):
    before = qapp.palette()
    try:
        theme.apply_theme(qapp, "dark")
        assert theme.is_dark() and theme.color(Tone.MUTED) == DARK[Tone.MUTED]
        theme.apply_theme(qapp, "light")
        assert not theme.is_dark()
        with pytest.raises(ValueError, match="theme must be one of"):
            theme.apply_theme(qapp, "purple")
    finally:
        qapp.setPalette(before)


# ---------------------------------------------------------------------------- the widgets
def test_every_text_tone_reads_on_the_row_and_box_tints(qapp):
    """The table writes errors and "not reviewed" on the tinted rows; the notice boxes and the
    unreadable tile write the error tone (or the palette's text) on a tint."""
    for shades in (LIGHT, DARK):
        for tone in TEXT_TONES:
            for tint in theme.BACKGROUND_TONES:
                assert contrast_ratio(QColor(shades[tone]), QColor(shades[tint])) >= 4.5, (tone, tint)


@pytest.fixture
def restore_theme(qapp):
    """Whatever a test applies, the next test gets the palette and style it had before."""
    palette, style = QPalette(qapp.palette()), qapp.style().name()
    yield
    if qapp.style().name() != style:
        qapp.setStyle(QStyleFactory.create(style))
    qapp.setPalette(palette)
    assert theme.is_dark() == theme.is_dark(palette)


@pytest.fixture(params=["light", "dark"])
def themed_window(request, qapp, qtbot, settings, restore_theme):
    """The main window built once the theme is applied (as at start-up)."""
    from gui.main_window import DEFAULT_SIZE, MainWindow

    theme.apply_theme(qapp, request.param)
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.resize(*DEFAULT_SIZE)  # the offscreen screen is small: every label on show
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.history_loaded, timeout=10000)
    yield win
    win.shutdown()


def flagged(i: int) -> ReviewedImage:
    probs = {c: 0.55 if c == "Pre" else 0.15 for c in CLASS_IDS}
    return ReviewedImage.from_result(ImageResult(f"/data/S/img{i:02d}.jpg", "ok", "Pre", 0.55, probs,
                                                 needs_review=True, flags=("low_confidence",)), position=i)


def failed(i: int) -> ReviewedImage:
    return ReviewedImage.from_result(ImageResult(f"/data/S/img{i:02d}.jpg", "error", error="cannot decode"),
                                     position=i)


def background_of(image: QImage, widget: QWidget) -> QColor:
    """The colour a widget is drawn on: the commonest pixel of its area in the window's grab."""
    ratio = image.devicePixelRatio()
    seen = widget.visibleRegion().boundingRect().translated(widget.mapTo(widget.window(), QPoint(0, 0)))
    seen = QRect(seen.topLeft() * ratio, seen.size() * ratio).intersected(image.rect())
    counts = Counter(image.pixel(x, y) for x in range(seen.left(), seen.right() + 1, 2)
                     for y in range(seen.top(), seen.bottom() + 1, 2))
    assert counts.total() >= 20, f"{widget.objectName() or widget.text()!r} is not on show"
    return QColor.fromRgb(counts.most_common(1)[0][0])


def commonest(image: QImage) -> QColor:
    counts = Counter(image.pixel(x, y) for x in range(image.width()) for y in range(image.height()))
    return QColor.fromRgb(counts.most_common(1)[0][0])


def text_of(widget: QWidget) -> QColor:
    return widget.palette().color(widget.foregroundRole())


def test_muted_note_and_warning_labels_read_on_what_they_are_drawn_on(themed_window):
    win, rp = themed_window, themed_window.results_panel
    rp.set_sample("S", [flagged(0), failed(1)], 2)  # not signed off: one flagged image left
    win.side_tabs.setCurrentWidget(win.side_tabs.widget(0))
    labels = {"shown": rp.shown_label, "queue": win.queue_panel.overall_label,
              "rationale": rp.summary_box.rationale_label, "note": rp.summary_box.note_label,
              "research use": win.ruo_label, "sign state": rp.sign_state_label}
    assert "Not signed off" in rp.sign_state_label.text()
    QApplication.processEvents()
    image = win.grab().toImage()
    for name, label in labels.items():
        assert label.isVisible() and label.text(), name
        fg, bg = text_of(label), background_of(image, label)
        assert theme.is_dark(win.palette()) == (bg.lightnessF() < 0.5), (name, bg.name())
        assert contrast_ratio(fg, bg) >= 4.5, (name, fg.name(), bg.name())
    assert text_of(rp.sign_state_label) == theme.qcolor(Tone.WARNING)


def test_result_rows_to_review_and_with_an_error_read_in_every_cell(themed_window):
    rp = themed_window.results_panel
    rp.set_sample("S", [flagged(0), failed(1)], 2)
    model, palette = rp.model, rp.table.palette()
    tinted = set()
    for row in range(model.rowCount()):
        for col in range(model.columnCount()):
            index = model.index(row, col)
            bg = model.data(index, Qt.ItemDataRole.BackgroundRole) or palette.color(QPalette.ColorRole.Base)
            fg = model.data(index, Qt.ItemDataRole.ForegroundRole) or palette.color(QPalette.ColorRole.Text)
            if bg != palette.color(QPalette.ColorRole.Base):
                tinted.add(row)
            assert contrast_ratio(QColor(fg), QColor(bg)) >= 4.5, (row, col, QColor(fg).name(), QColor(bg).name())
    assert tinted == {0, 1}


def test_queue_status_text_reads_on_the_table(themed_window, tmp_path):
    win = themed_window
    assert win.store is not None
    win.store.create_or_get_sample("A", tmp_path)
    win.batch.add(SimpleNamespace(sample_id="A", folder=tmp_path / "A"), "A", [str(tmp_path / "A" / "1.png")])
    table = win.queue_panel.table
    status = table.item(0, 1)
    assert status.text() == "Queued"
    fg = status.data(Qt.ItemDataRole.ForegroundRole) or table.palette().color(QPalette.ColorRole.Text)
    assert contrast_ratio(QColor(fg), table.palette().color(QPalette.ColorRole.Base)) >= 4.5, QColor(fg).name()


def test_a_failed_job_is_in_the_error_tone_that_reads_on_a_dark_table(qapp, qtbot, store, tmp_path, restore_theme):
    theme.apply_theme(qapp, "dark")
    queue = BatchQueue(store, FakeHost(error=ModelError("model file missing")), batch_size=1, decode_workers=1)
    try:
        panel = QueuePanel(queue)
        qtbot.addWidget(panel)
        store.create_or_get_sample("A", tmp_path)
        queue.add(SimpleNamespace(sample_id="A", folder=tmp_path / "A"), "A", [str(tmp_path / "A" / "1.png")])
        panel.start_button.click()
        qtbot.waitUntil(lambda: not queue.running, timeout=10000)
        status = panel.table.item(0, 1)
        assert status.text().startswith("Failed")
        fg = QColor(status.data(Qt.ItemDataRole.ForegroundRole))
        assert fg == theme.qcolor(Tone.ERROR)
        assert contrast_ratio(fg, panel.table.palette().color(QPalette.ColorRole.Base)) >= 4.5
    finally:
        queue.shutdown(10)


def test_switching_theme_at_run_time_recolours_what_was_built_before(qapp, qtbot, window, tmp_path, restore_theme):
    from tests.gui.conftest import make_sample_folder, wait_sample_loaded

    theme.apply_theme(qapp, "light")
    window.open_paths([make_sample_folder(tmp_path, "S-broken", count=1, broken=True)])
    wait_sample_loaded(qtbot, window)
    rp, sp = window.results_panel, window.samples_panel
    rp.set_sample("S", [flagged(0), failed(1)], 2)
    thumbs = sp.model_for(sp.current_sample())
    bad = next(r for r in range(thumbs.rowCount()) if thumbs.data(thumbs.index(r), ThumbnailModel.ErrorRole))

    def tile() -> QColor:
        return commonest(thumbs.data(thumbs.index(bad), Qt.ItemDataRole.DecorationRole).pixmap(THUMB_SIZE).toImage())

    def seen(shades) -> None:
        QApplication.processEvents()  # the style sheets set again take effect
        assert text_of(rp.shown_label).name() == shades[Tone.MUTED]
        assert text_of(sp.folder_label).name() == shades[Tone.MUTED]
        assert QColor(rp.model.data(rp.model.index(0, 0), Qt.ItemDataRole.BackgroundRole)).name() \
            == shades[Tone.ROW_TO_REVIEW]
        assert shades[Tone.WARNING] in rp.summary_box.flags_label.text()  # re-rendered rich text
        assert shades[Tone.MUTED] in rp.model_output_label.text()
        assert shades[Tone.ERROR] in sp.images_label.text()  # "1 unreadable"
        assert QColor(thumbs.data(thumbs.index(bad), Qt.ItemDataRole.ForegroundRole)).name() == shades[Tone.ERROR]
        assert tile().name() == shades[Tone.ROW_ERROR]

    seen(LIGHT)
    assert not theme.is_dark(sp.classify_button.palette())
    theme.apply_theme(qapp, "dark")
    seen(DARK)
    # a style sheet without a colour (the bold Classify button) is set again: not light grey on dark
    assert theme.is_dark(sp.classify_button.palette())
    theme.apply_theme(qapp, "system")  # the desktop's palette again (offscreen: a light one)
    seen(LIGHT)


def test_the_theme_combo_saves_the_choice_and_applies_it(qapp, window, monkeypatch, restore_theme):
    from gui.settings import load_settings
    from gui.settings_dialog import SettingsDialog
    from tests.gui.conftest import drive_dialog

    def choose(value):
        def step(dialog):
            assert dialog.theme_combo.currentData() == window.settings.theme  # shows the current one
            dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData(value))
            dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
        return step

    drive_dialog(monkeypatch, SettingsDialog, choose("dark"), choose("light"))
    assert window.settings.theme == "system" and not theme.is_dark()
    assert window.open_settings()
    assert theme.is_dark() and window.settings.theme == "dark" and load_settings().theme == "dark"
    assert window.open_settings()
    assert not theme.is_dark() and load_settings().theme == "light"


def test_start_up_applies_the_saved_theme_before_the_window_is_built(qapp, monkeypatch, restore_theme):
    import gui.app
    import gui.errors
    import gui.main_window
    from gui.settings import Settings, save_settings

    save_settings(Settings(theme="dark"))
    built_dark: list[bool] = []

    def window(settings):
        built_dark.append(theme.is_dark())
        raise RuntimeError("stop here")

    monkeypatch.setattr(gui.app, "setup_logging", lambda: "log")
    monkeypatch.setattr(gui.errors, "install_exception_hooks", lambda: None)
    monkeypatch.setattr(gui.errors, "show_error", lambda *args: None)
    monkeypatch.setattr(gui.main_window, "MainWindow", window)
    assert gui.app.run_app([]) == 1
    assert built_dark == [True]
