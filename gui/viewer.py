"""The image viewer: a zoomable, pannable view of one image with optional overlays.

:class:`ImageViewer` (a ``QGraphicsView``) shows one image; wheel and +/− zoom about the mouse,
dragging pans, ``F`` fits the image to the window and ``1`` shows it at 100 %. Two overlays sit
above the image: the colour mask (what the preprocessing's LAB thresholds select) and a heat map
(the Grad-CAM overlay that inference will feed through :meth:`ImageViewer.set_heatmap`).

:class:`ViewerPanel` adds a toolbar, the actions (also placed in the main window's View menu)
and a caption line; it emits ``navigate(+1/-1)`` for next/previous image (Right/PageDown,
Left/PageUp) and leaves the choice of image to whoever owns the list.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QPainter, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QSizePolicy,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from gui.imaging import array_to_qimage, heatmap_image, mask_overlay

ZOOM_STEP = 1.25
MIN_ZOOM = 0.02
MAX_ZOOM = 40.0


class ImageViewer(QGraphicsView):
    """A QGraphicsView showing one image, a colour-mask overlay and a heat-map overlay."""

    #: +1 for the next image, -1 for the previous one.
    navigate = Signal(int)
    #: The view's scale changed (1.0 = one image pixel per screen pixel).
    zoom_changed = Signal(float)
    #: An overlay was set or cleared (toggles use it to enable themselves).
    overlays_changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, placeholder: str = "No image",
                 navigation: bool = True):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._image_item = QGraphicsPixmapItem()
        self._mask_item = QGraphicsPixmapItem()
        self._heat_item = QGraphicsPixmapItem()
        for z, item in enumerate((self._image_item, self._mask_item, self._heat_item)):
            item.setZValue(z)
            item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
            self._scene.addItem(item)
        self._mask_item.setVisible(False)
        self._heat_item.setVisible(False)
        self._has_image = False
        self._has_mask = False
        self._has_heatmap = False
        self._mask_visible = False
        self._heatmap_visible = False
        self._fit_mode = True
        self._navigation = navigation
        self._placeholder = placeholder
        self.image_size: tuple[int, int] | None = None  # (width, height)

        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor("#263238"))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # drops go to the main window
        self.setMinimumSize(160, 160)

    # ------------------------------------------------------------------ content
    def has_image(self) -> bool:
        return self._has_image

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.viewport().update()

    def set_image(self, rgb: np.ndarray | None, *, placeholder: str | None = None,
                  keep_view: bool = False) -> None:
        """Show ``rgb`` ((H, W, 3) or (H, W) uint8), or nothing with a placeholder text.

        Overlays belong to the previous image and are cleared. ``keep_view`` keeps the zoom and
        position when the new image has the size of the old one (a recomputed stage).
        """
        same_size = rgb is not None and self.image_size == (rgb.shape[1], rgb.shape[0])
        if placeholder is not None:
            self._placeholder = placeholder
        self.set_mask(None)
        self.set_heatmap(None)
        if rgb is None:
            self._image_item.setPixmap(QPixmap())
            self._has_image = False
            self.image_size = None
            self._scene.setSceneRect(QRectF(0, 0, 1, 1))
            self.resetTransform()
        else:
            pixmap = QPixmap.fromImage(array_to_qimage(rgb))
            self._image_item.setPixmap(pixmap)
            self._has_image = True
            self.image_size = (pixmap.width(), pixmap.height())
            self._scene.setSceneRect(QRectF(pixmap.rect()))
            if not (keep_view and same_size) or self._fit_mode:
                self.fit()
        self.overlays_changed.emit()
        self.viewport().update()

    def set_mask(self, mask: np.ndarray | None,
                 region: tuple[float, float, float, float] | None = None) -> None:
        """The colour mask (0/255) or None, stretched over ``region`` = (x, y, width, height) in
        image pixels (default: the whole image; the model's mask covers the centre crop)."""
        if mask is None or not self._has_image:
            self._mask_item.setPixmap(QPixmap())
            self._has_mask = False
        else:
            self._place_overlay(self._mask_item, QPixmap.fromImage(mask_overlay(mask)), region)
            self._has_mask = True
        self._mask_item.setVisible(self._has_mask and self._mask_visible)
        self.overlays_changed.emit()

    def set_heatmap(self, rgb_overlay: np.ndarray | None,
                    region: tuple[float, float, float, float] | None = None) -> None:
        """The Grad-CAM overlay ((h, w, 3) RGB at uniform opacity, or (h, w, 4) RGBA), or None.

        It is stretched over ``region`` = (x, y, width, height) in image pixels, by default the
        whole image (pass the centre-crop square when the overlay covers the model input only).
        Setting an overlay does not show it: that is the toggle's job (it becomes enabled).
        """
        if rgb_overlay is None or not self._has_image:
            self._heat_item.setPixmap(QPixmap())
            self._has_heatmap = False
            self._heatmap_visible = False
        else:
            self._place_overlay(self._heat_item, QPixmap.fromImage(heatmap_image(rgb_overlay)), region)
            self._has_heatmap = True
        self._heat_item.setVisible(self._has_heatmap and self._heatmap_visible)
        self.overlays_changed.emit()

    def _place_overlay(self, item: QGraphicsPixmapItem, pixmap: QPixmap,
                       region: tuple[float, float, float, float] | None) -> None:
        assert self.image_size is not None
        x, y, w, h = region if region is not None else (0.0, 0.0, *self.image_size)
        item.setPixmap(pixmap)
        item.setTransform(QTransform.fromScale(w / max(1, pixmap.width()), h / max(1, pixmap.height())))
        item.setPos(x, y)

    def has_mask(self) -> bool:
        return self._has_mask

    def has_heatmap(self) -> bool:
        return self._has_heatmap

    def mask_visible(self) -> bool:
        return self._mask_visible

    def heatmap_visible(self) -> bool:
        return self._heatmap_visible

    def set_mask_visible(self, visible: bool) -> None:
        self._mask_visible = bool(visible)
        self._mask_item.setVisible(self._has_mask and self._mask_visible)

    def set_heatmap_visible(self, visible: bool) -> None:
        self._heatmap_visible = bool(visible) and self._has_heatmap
        self._heat_item.setVisible(self._heatmap_visible)

    # ------------------------------------------------------------------ zoom
    def zoom_factor(self) -> float:
        return self.transform().m11()

    def is_fit_mode(self) -> bool:
        return self._fit_mode

    def set_zoom(self, factor: float) -> None:
        factor = min(MAX_ZOOM, max(MIN_ZOOM, float(factor)))
        self._fit_mode = False
        self.setTransform(QTransform.fromScale(factor, factor))
        self._zoom_updated()

    def zoom_by(self, factor: float) -> None:
        current = self.zoom_factor()
        target = min(MAX_ZOOM, max(MIN_ZOOM, current * factor))
        if not self._has_image or abs(target - current) < 1e-9:
            return
        self._fit_mode = False
        self.scale(target / current, target / current)
        self._zoom_updated()

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1 / ZOOM_STEP)

    def actual_size(self) -> None:
        """1:1 — one image pixel per screen pixel, keeping the current centre."""
        if self._has_image:
            centre = self.mapToScene(self.viewport().rect().center())
            self.set_zoom(1.0)
            self.centerOn(centre)

    def fit(self) -> None:
        """Scale the whole image into the window (kept on resize until the user zooms)."""
        self._fit_mode = True
        if self._has_image:
            self.resetTransform()
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
        self._zoom_updated()

    def _zoom_updated(self) -> None:
        # Smooth scaling for overview, crisp pixels when inspecting closely.
        mode = (Qt.TransformationMode.FastTransformation if self.zoom_factor() >= 3
                else Qt.TransformationMode.SmoothTransformation)
        self._image_item.setTransformationMode(mode)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform,
                           mode == Qt.TransformationMode.SmoothTransformation)
        self.zoom_changed.emit(self.zoom_factor())

    # ------------------------------------------------------------------ events
    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta == 0 or not self._has_image:
            event.ignore()
            return
        self.zoom_by(ZOOM_STEP ** (delta / 120.0))
        event.accept()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_out()
        elif key == Qt.Key.Key_F:
            self.fit()
        elif key == Qt.Key.Key_1:
            self.actual_size()
        elif self._navigation and key in (Qt.Key.Key_Right, Qt.Key.Key_PageDown):
            self.navigate.emit(+1)
        elif self._navigation and key in (Qt.Key.Key_Left, Qt.Key.Key_PageUp):
            self.navigate.emit(-1)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_mode and self._has_image:
            self.resetTransform()
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.zoom_factor())

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if not self._has_image and self._placeholder:
            painter = QPainter(self.viewport())
            painter.setPen(QColor("#cfd8dc"))
            rect = self.viewport().rect().adjusted(24, 24, -24, -24)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            painter.end()


def crop_region(width: int, height: int, crop: str = "center") -> tuple[int, int, int, int]:
    """The part of a width x height image that preprocessing keeps (as engine.imaging.preprocess's
    crop_and_resize does): the centred square for "center", everything for "resize"."""
    if crop != "center" or width == height:
        return (0, 0, width, height)
    side = min(width, height)
    return ((width - side) // 2, (height - side) // 2, side, side)


def _action(parent: QWidget, text: str, shortcuts: list, tip: str, slot=None, *,
            checkable: bool = False) -> QAction:
    act = QAction(text, parent)
    act.setShortcuts([QKeySequence(s) for s in shortcuts])
    # Active while the focus is in the viewer panel: arrow keys keep working in fields and lists.
    act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    hint = ", ".join(QKeySequence(s).toString(QKeySequence.SequenceFormat.NativeText) for s in shortcuts)
    act.setToolTip(f"{tip} ({hint})" if hint else tip)
    act.setStatusTip(tip)
    act.setCheckable(checkable)
    if slot is not None:
        (act.toggled if checkable else act.triggered).connect(slot)
    parent.addAction(act)
    return act


class ViewerPanel(QWidget):
    """Toolbar + :class:`ImageViewer` + caption; the actions are reused in the View menu."""

    navigate = Signal(int)
    #: The colour-mask toggle changed.
    mask_toggled = Signal(bool)
    #: The heat-map toggle is on for an image that can have one but has none yet: compute it
    #: and hand it to :meth:`show_heatmap`.
    heatmap_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = ImageViewer(self, placeholder="Open a sample folder (File ▸ Open folder…) "
                                                   "or drop folders here.")
        v = self.viewer
        self.act_zoom_in = _action(self, "Zoom in", [QKeySequence.StandardKey.ZoomIn, "+", "="],
                                   "Zoom in", v.zoom_in)
        self.act_zoom_out = _action(self, "Zoom out", [QKeySequence.StandardKey.ZoomOut, "-"],
                                    "Zoom out", v.zoom_out)
        self.act_fit = _action(self, "Fit", ["F"], "Fit the image to the window", v.fit)
        # Ctrl+1, not 1: the keys 1-4 set the reviewed class (gui.results_review.REVIEW_KEYS).
        self.act_actual = _action(self, "1:1", ["Ctrl+1"], "Show the image at 100 % (1:1, Ctrl+1)", v.actual_size)
        self.act_prev = _action(self, "Previous", ["Left", "PgUp"], "Previous image",
                                lambda: self.navigate.emit(-1))
        self.act_next = _action(self, "Next", ["Right", "PgDown"], "Next image",
                                lambda: self.navigate.emit(+1))
        self.act_mask = _action(self, "Colour mask", ["M"],
                                "Tint what the colour mask selects: the preview's mask, over the part the model sees",
                                self._on_mask_toggled, checkable=True)
        self._heat_available = False  # the image is classified: a heat map can be computed
        self._heat_wanted = False  # the user switched the heat map on (kept from image to image)
        self.act_heatmap = _action(self, "Heat map", ["H"],
                                   "Show the Grad-CAM heat map: where the model looked (classified images; "
                                   "computed on request)",
                                   self._on_heatmap_toggled, checkable=True)
        self.act_heatmap.setEnabled(False)
        # Short toolbar labels (the menus keep the full text): all fit beside a narrow viewer.
        for act, short in ((self.act_prev, "◀"), (self.act_next, "▶"), (self.act_zoom_out, "−"),
                           (self.act_zoom_in, "+"), (self.act_mask, "Mask")):
            act.setIconText(short)
        v.navigate.connect(self.navigate)
        v.overlays_changed.connect(self._sync_overlay_actions)
        v.zoom_changed.connect(self._update_caption)

        self.toolbar = QToolBar("Viewer", self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for act in (self.act_prev, self.act_next, None, self.act_zoom_out, self.act_zoom_in,
                    self.act_fit, self.act_actual, None, self.act_mask, self.act_heatmap):
            if act is None:
                self.toolbar.addSeparator()
            else:
                self.toolbar.addAction(act)
        self.caption = QLabel("", self)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.caption.setContentsMargins(6, 2, 6, 2)
        self._title = ""

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(self.caption)
        self._sync_overlay_actions()

    def actions_for_menu(self) -> list[QAction | None]:
        return [self.act_zoom_in, self.act_zoom_out, self.act_fit, self.act_actual, None,
                self.act_prev, self.act_next, None, self.act_mask, self.act_heatmap]

    def set_title(self, title: str) -> None:
        """The caption's text before the size and zoom (e.g. "3/12  IMG_0003.jpg")."""
        self._title = title
        self._update_caption()

    def _on_mask_toggled(self, checked: bool) -> None:
        self.viewer.set_mask_visible(checked)
        self.mask_toggled.emit(checked)

    def _on_heatmap_toggled(self, checked: bool) -> None:
        self._heat_wanted = checked
        if checked and not self.viewer.has_heatmap() and self._heat_available:
            self.heatmap_requested.emit()
        self.viewer.set_heatmap_visible(checked)

    def _set_heatmap_checked(self, checked: bool) -> None:
        """Change the toggle's look without changing what the user asked for."""
        self.act_heatmap.blockSignals(True)
        self.act_heatmap.setChecked(checked)
        self.act_heatmap.blockSignals(False)

    def set_heatmap_available(self, available: bool) -> None:
        """Whether the image on show can have a heat map (it has been classified). When the user
        has the heat map switched on, this asks for it (``heatmap_requested``)."""
        self._heat_available = bool(available)
        self._sync_overlay_actions()
        if self._heat_available and self._heat_wanted and not self.viewer.has_heatmap():
            self._set_heatmap_checked(True)
            self.heatmap_requested.emit()

    def heatmap_wanted(self) -> bool:
        return self._heat_wanted

    def show_heatmap(self, overlay: np.ndarray | None, region: tuple[float, float, float, float] | None = None) -> None:
        """Set the computed heat map; it is visible when the toggle is on."""
        self.viewer.set_heatmap(overlay, region)
        self.viewer.set_heatmap_visible(self.act_heatmap.isChecked())

    def _sync_overlay_actions(self) -> None:
        v = self.viewer
        self.act_heatmap.setEnabled(v.has_heatmap() or self._heat_available)
        if not v.has_heatmap() and self.act_heatmap.isChecked() and not self._heat_available:
            self._set_heatmap_checked(False)
        has_image = v.has_image()
        for act in (self.act_zoom_in, self.act_zoom_out, self.act_fit, self.act_actual, self.act_mask):
            act.setEnabled(has_image)
        self._update_caption()

    def _update_caption(self, *_args) -> None:
        v = self.viewer
        parts = [self._title] if self._title else []
        if v.image_size is not None:
            parts.append(f"{v.image_size[0]} × {v.image_size[1]} px")
            parts.append(f"zoom {v.zoom_factor() * 100:.0f} %{' (fit)' if v.is_fit_mode() else ''}")
        self.caption.setText("   ·   ".join(parts))
