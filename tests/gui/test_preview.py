"""Preprocessing preview: stages, debounced recompute where the latest request wins, notices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.imaging.preprocess import ColorRange, PreprocessConfig, preprocess
from gui.preview import DEBOUNCE_MS, PreviewPanel
from gui.preview_config import config_differences
from gui.workers import WorkerPool
from tests.gui.conftest import smear, wait_image_shown, wait_sample_loaded


@pytest.fixture
def pool():
    p = WorkerPool(max_threads=2)
    yield p
    p.shutdown()


@pytest.fixture
def preview(qtbot, pool):
    panel = PreviewPanel(pool)
    qtbot.addWidget(panel)
    panel.resize(450, 800)
    panel.show()
    return panel


def wait_displayed(qtbot, panel):
    qtbot.waitUntil(lambda: panel.displayed is not None
                    and panel.displayed.request == panel.latest_request, timeout=10000)


def test_stages_switch(qtbot, preview):
    rgb = smear(160)
    preview.set_image(rgb, "x.png")
    wait_displayed(qtbot, preview)
    expected = preprocess(rgb, preview.config())
    for name in ("original", "enhanced", "mask", "masked", "model_input"):
        preview.stage_buttons[name].click()
        assert preview.current_stage == name
        assert preview.stage_buttons[name].isChecked()
        shown = preview.displayed_stage_image()
        assert np.array_equal(shown, getattr(expected, name))
        assert preview.stage_view.image_size == (224, 224)
    preview.set_stage("mask")
    assert preview.displayed_stage_image().ndim == 2
    assert "selected" in preview.stage_caption.text()


def test_parameter_changes_are_debounced_and_latest_wins(qtbot, preview):
    rgb = smear(160)
    preview.set_image(rgb)
    wait_displayed(qtbot, preview)
    submitted = preview.submitted_requests
    for value in (0.5, 3.0, 6.5, 11.0):  # fired faster than the debounce interval
        preview.clip_spin.setValue(value)
    assert preview.submitted_requests == submitted  # nothing yet: waiting for the pause
    qtbot.wait(DEBOUNCE_MS // 3)
    preview.tile_spin.setValue(4)
    qtbot.waitUntil(lambda: preview.displayed.config.clahe_tile_grid == 4, timeout=10000)
    wait_displayed(qtbot, preview)
    qtbot.wait(DEBOUNCE_MS * 2)  # nothing else is pending
    assert preview.submitted_requests == submitted + 1  # one computation for the burst
    shown = preview.displayed.config
    assert shown.clahe_clip_limit == 11.0 and shown.clahe_tile_grid == 4
    expected = preprocess(rgb, PreprocessConfig(clahe_clip_limit=11.0, clahe_tile_grid=4))
    assert np.array_equal(preview.displayed_stage_image(), expected.mask)


def test_stale_results_are_dropped(qtbot, preview):
    rgb = smear(200)
    preview.set_image(rgb)
    wait_displayed(qtbot, preview)
    dropped = preview.dropped_results
    last = None
    for clip in (1.0, 2.5, 4.0, 8.0):  # several requests in flight at once
        preview.clip_spin.blockSignals(True)
        preview.clip_spin.setValue(clip)
        preview.clip_spin.blockSignals(False)
        last = preview.recompute_now()
    wait_displayed(qtbot, preview)
    qtbot.waitUntil(lambda: preview.dropped_results == dropped + 3, timeout=10000)
    assert preview.displayed.request == last
    assert preview.displayed.config.clahe_clip_limit == 8.0
    expected = preprocess(rgb, preview.config())
    assert np.array_equal(preview.displayed.stages.masked, expected.masked)


def test_colour_range_controls_keep_lower_below_upper(qtbot, preview):
    row = preview.range_rows["pink"]
    row.upper[0].setValue(140)
    row.lower[0].setValue(200)  # clamped to the upper bound
    assert row.lower[0].value() == 140
    cfg = preview.config()
    pink = {r.name: r for r in cfg.color_ranges}["pink"]
    assert pink.lower[0] == 140 and pink.upper[0] == 140


def test_differs_notice_and_reset_without_model(qtbot, preview):
    preview.set_model_config(None, None, "No model installed")
    assert not preview.model_note.isHidden() and "No model" in preview.model_note.text()
    assert preview.config() == PreprocessConfig()
    assert preview.differs_notice.isHidden()
    preview.range_rows["blue"].lower[2].setValue(120)
    assert not preview.differs_notice.isHidden()
    assert "blue b low" in preview.differs_notice.text()
    preview.reset_button.click()
    assert preview.differs_notice.isHidden()
    assert preview.config() == PreprocessConfig()


def test_config_differences_names():
    base = PreprocessConfig()
    changed = base.replace(clahe_clip_limit=3.0, lab_source="rgb",
                           color_ranges=(ColorRange("pink", (131, 70, 215), (230, 170, 255)),) + base.color_ranges[1:])
    assert config_differences(changed, base) == ["CLAHE clip limit", "LAB source", "pink L low"]
    assert config_differences(base, base) == []


def write_model_card(folder, config: PreprocessConfig):
    from engine.models.card import ModelCard

    card = ModelCard(id="testmodel", version="9.9.9", architecture="baseline", preprocess=config,
                     weights_file="testmodel.safetensors", weights_sha256="0" * 64)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "testmodel.json"
    path.write_text(json.dumps(card.to_json_dict()))
    return path


def test_window_uses_the_model_config_and_reset_restores_it(qtbot, tmp_path, sample_folder):
    from gui.main_window import MainWindow
    from gui.settings import Settings

    model_config = PreprocessConfig(clahe_clip_limit=3.5, clahe_tile_grid=6, lab_source="rgb")
    card = write_model_card(tmp_path / "models", model_config)
    win = MainWindow(Settings(active_model=str(card)))
    qtbot.addWidget(win)
    try:
        preview = win.preview_panel
        assert win.model_card is not None and "testmodel" in win.model_label.text()
        assert preview.config() == model_config
        assert preview.model_note.isHidden() and preview.differs_notice.isHidden()
        win.open_paths([sample_folder])
        wait_sample_loaded(qtbot, win)
        wait_image_shown(qtbot, win, 0)
        preview.clip_spin.setValue(1.0)
        assert not preview.differs_notice.isHidden()
        assert "testmodel" in preview.differs_notice.text()
        qtbot.waitUntil(lambda: preview.displayed is not None
                        and preview.displayed.config.clahe_clip_limit == 1.0, timeout=10000)
        preview.reset_button.click()
        assert preview.differs_notice.isHidden()
        assert preview.config() == model_config
        qtbot.waitUntil(lambda: preview.displayed.config == model_config, timeout=10000)
    finally:
        win.shutdown()


def test_window_without_model_falls_back_with_note(qtbot, tmp_path):
    from gui.main_window import MainWindow
    from gui.settings import Settings

    win = MainWindow(Settings(active_model=str(tmp_path / "nowhere" / "missing.safetensors")))
    qtbot.addWidget(win)
    try:
        assert win.model_card is None
        assert "No model installed" in win.model_label.text()
        assert not win.preview_panel.model_note.isHidden()
        assert win.preview_panel.config() == PreprocessConfig()
    finally:
        win.shutdown()
