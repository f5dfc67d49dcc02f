"""Image viewer: zoom (wheel, keys, actions), fit, 1:1, overlays."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from gui.viewer import ImageViewer, ViewerPanel
from tests.gui.conftest import smear


@pytest.fixture
def panel(qtbot):
    p = ViewerPanel()
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    qtbot.waitExposed(p)
    p.viewer.set_image(smear(640))
    return p


def test_starts_fitted(panel):
    v = panel.viewer
    assert v.is_fit_mode()
    # 640 px image in a < 500 px high view: scaled down
    assert 0 < v.zoom_factor() < 1
    assert v.image_size == (640, 640)


def test_zoom_in_out_fit_actual_change_transform(panel):
    v = panel.viewer
    fitted = v.zoom_factor()
    panel.act_zoom_in.trigger()
    assert v.zoom_factor() == pytest.approx(fitted * 1.25)
    assert not v.is_fit_mode()
    panel.act_zoom_out.trigger()
    panel.act_zoom_out.trigger()
    assert v.zoom_factor() == pytest.approx(fitted / 1.25)
    panel.act_actual.trigger()
    assert v.zoom_factor() == pytest.approx(1.0)
    panel.act_fit.trigger()
    assert v.zoom_factor() == pytest.approx(fitted)
    assert v.is_fit_mode()
    assert "zoom" in panel.caption.text()


def test_keyboard_zoom(qtbot, panel):
    v = panel.viewer
    v.setFocus()
    fitted = v.zoom_factor()
    qtbot.keyClick(v, Qt.Key.Key_Plus)
    assert v.zoom_factor() > fitted
    qtbot.keyClick(v, Qt.Key.Key_1)
    assert v.zoom_factor() == pytest.approx(1.0)
    qtbot.keyClick(v, Qt.Key.Key_Minus)
    assert v.zoom_factor() == pytest.approx(0.8)
    qtbot.keyClick(v, Qt.Key.Key_F)
    assert v.zoom_factor() == pytest.approx(fitted)


def test_wheel_zoom(panel):
    v = panel.viewer
    before = v.zoom_factor()
    centre = QPointF(v.viewport().width() / 2, v.viewport().height() / 2)
    event = QWheelEvent(centre, v.mapToGlobal(centre.toPoint()).toPointF(), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    v.wheelEvent(event)
    assert v.zoom_factor() == pytest.approx(before * 1.25)


def test_zoom_is_bounded(panel):
    v = panel.viewer
    for _ in range(100):
        v.zoom_in()
    assert v.zoom_factor() <= 40.0 + 1e-9
    for _ in range(200):
        v.zoom_out()
    assert v.zoom_factor() >= 0.02 - 1e-9


def test_fit_follows_resize(qtbot, panel):
    v = panel.viewer
    before = v.zoom_factor()
    panel.resize(1000, 900)
    qtbot.waitUntil(lambda: v.zoom_factor() > before)


def test_empty_viewer_placeholder_and_disabled_actions(qtbot):
    p = ViewerPanel()
    qtbot.addWidget(p)
    assert not p.viewer.has_image()
    assert not p.act_zoom_in.isEnabled() and not p.act_mask.isEnabled() and not p.act_heatmap.isEnabled()
    p.viewer.zoom_in()  # harmless without an image
    p.viewer.set_image(np.zeros((10, 20), np.uint8))  # grey images too
    assert p.act_zoom_in.isEnabled()
    assert p.viewer.image_size == (20, 10)


def test_mask_and_heatmap_overlays(panel):
    v = panel.viewer
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 255
    v.set_mask(mask)
    assert v.has_mask() and not v.mask_visible()
    panel.act_mask.setChecked(True)
    assert v.mask_visible()
    heat = np.zeros((7, 7, 4), np.uint8)
    v.set_heatmap(heat, region=(80, 80, 480, 480))
    assert panel.act_heatmap.isEnabled()
    v.set_image(smear(300))  # a new image drops the old overlays
    assert not v.has_mask() and not v.has_heatmap()
    assert not panel.act_heatmap.isEnabled()


def test_navigation_signal(qtbot):
    v = ImageViewer()
    qtbot.addWidget(v)
    with qtbot.waitSignal(v.navigate) as blocker:
        qtbot.keyClick(v, Qt.Key.Key_PageDown)
    assert blocker.args == [1]
    stage_view = ImageViewer(navigation=False)
    qtbot.addWidget(stage_view)
    with qtbot.assertNotEmitted(stage_view.navigate):
        qtbot.keyClick(stage_view, Qt.Key.Key_Right)


def test_crop_region_matches_engine_centre_crop():
    from engine.imaging.preprocess import crop_and_resize
    from gui.viewer import crop_region

    rgb = np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3)
    x, y, w, h = crop_region(50, 30, "center")
    assert (x, y, w, h) == (10, 0, 30, 30)
    assert np.array_equal(crop_and_resize(rgb, 30, "center"), rgb[y:y + h, x:x + w])
    assert crop_region(50, 30, "resize") == (0, 0, 50, 30)


def test_mask_overlay_is_placed_over_region(panel):
    v = panel.viewer
    v.set_image(smear(200)[:, :150].copy())  # 150 x 200 (w x h)
    v.set_mask(np.full((32, 32), 255, np.uint8), region=(0, 25, 150, 150))
    rect = v._mask_item.sceneBoundingRect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx((0, 25, 150, 150))
