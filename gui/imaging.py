"""Conversions between engine images (numpy arrays) and Qt images, and drawn placeholders.

``QImage`` may be created in any thread (``QPixmap`` only in the GUI thread), so workers build
QImages and the GUI turns them into pixmaps.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFont, QGuiApplication, QImage, QPainter, QPalette, QPen

from gui import theme
from gui.theme import Tone


def array_to_qimage(array: np.ndarray) -> QImage:
    """(H, W) uint8 grey, (H, W, 3) RGB or (H, W, 4) RGBA uint8 -> an independent QImage copy."""
    arr = np.ascontiguousarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif arr.ndim == 3 and arr.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    elif arr.ndim == 3 and arr.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
    else:
        raise ValueError(f"cannot show an image of shape {arr.shape}")
    h, w = arr.shape[:2]
    image = QImage(arr.data, w, h, arr.strides[0], fmt)
    return image.copy()  # detach from the numpy buffer


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage -> (H, W, 3) uint8 RGB copy (used by tests and screenshots)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    return buf.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def mask_overlay(mask: np.ndarray, color: tuple[int, int, int] = (0, 220, 140), alpha: int = 110) -> QImage:
    """A 0/255 mask -> an RGBA image tinting the selected pixels (transparent elsewhere)."""
    h, w = mask.shape[:2]
    rgba = np.zeros((h, w, 4), np.uint8)
    selected = mask > 0
    rgba[selected, :3] = color
    rgba[selected, 3] = alpha
    return array_to_qimage(rgba)


def heatmap_image(overlay: np.ndarray, alpha: int = 140) -> QImage:
    """An RGB heat map gets a uniform alpha; an RGBA one keeps its own."""
    if overlay.ndim == 3 and overlay.shape[2] == 3:
        rgba = np.empty(overlay.shape[:2] + (4,), np.uint8)
        rgba[..., :3] = overlay
        rgba[..., 3] = alpha
        overlay = rgba
    return array_to_qimage(overlay)


def placeholder_image(width: int, height: int, title: str, text: str = "",
                      *, error: bool = False, palette: QPalette | None = None) -> QImage:
    """A drawn tile: a title (e.g. "Unreadable") and a wrapped explanation, in the colours of
    ``palette`` (default: the application's; pass one when drawing off the GUI thread): the
    window colour with a muted title, or the error tint with the title in the error tone."""
    if palette is None:
        palette = QGuiApplication.palette()
    text_color = palette.color(QPalette.ColorRole.WindowText)
    image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(theme.qcolor(Tone.ROW_ERROR, palette) if error else palette.color(QPalette.ColorRole.Window))
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        border = theme.qcolor(Tone.ERROR if error else Tone.MUTED, palette)
        painter.setPen(QPen(border, 2, Qt.PenStyle.DashLine if not error else Qt.PenStyle.SolidLine))
        painter.drawRect(1, 1, width - 2, height - 2)
        font = QFont(painter.font())
        font.setBold(True)
        font.setPixelSize(max(9, height // 9))
        painter.setFont(font)
        painter.setPen(border)
        margin = 6
        title_rect = QRect(margin, margin, width - 2 * margin, height // 4)
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, title)
        if text:
            font.setBold(False)
            font.setPixelSize(max(9, height // 11))
            painter.setFont(font)
            painter.setPen(text_color)
            body = QRect(margin, margin + height // 4, width - 2 * margin, height - height // 4 - 2 * margin)
            painter.drawText(body, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
                             | Qt.TextFlag.TextWordWrap, text)
    finally:
        painter.end()
    return image
