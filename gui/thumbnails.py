"""A sample's images as thumbnails: :func:`make_thumbnail` decodes one in the worker pool (a file
that cannot be read gets a drawn "Unreadable" tile with the reason instead of failing) and
:class:`ThumbnailModel` lists a sample's images for a ``QListView`` in icon mode, and says which
rows a view is showing before they are decoded (``wanted``), so those are decoded first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QIcon, QImage, QPixmap

from engine.core.errors import ImageLoadError
from engine.io.images import load_image
from gui import theme
from gui.imaging import array_to_qimage, placeholder_image
from gui.theme import Tone
from gui.workbench import PENDING, READY, UNREADABLE, Sample, SampleImage

log = logging.getLogger("allsight.gui.thumbnails")

THUMB_SIZE = 96


@dataclass(frozen=True)
class ThumbnailResult:
    path: Path
    image: QImage | None
    error: str | None
    size: tuple[int, int] | None


def make_thumbnail(path: Path, size: int = THUMB_SIZE) -> ThumbnailResult:
    """Decode ``path`` and shrink it to fit ``size`` (worker thread; QImage is thread-safe)."""
    import cv2

    try:
        rgb = load_image(path)
    except ImageLoadError as exc:
        return ThumbnailResult(path, None, exc.reason, None)
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    return ThumbnailResult(path, array_to_qimage(np.ascontiguousarray(rgb)), None, (w, h))


def _icon(pixmap: QPixmap) -> QIcon:
    icon = QIcon()
    for mode in (QIcon.Mode.Normal, QIcon.Mode.Selected, QIcon.Mode.Active):
        icon.addPixmap(pixmap, mode)
    return icon


class ThumbnailModel(QAbstractListModel):
    """The images of one sample, with their thumbnails (or a placeholder) as decoration."""

    PathRole = Qt.ItemDataRole.UserRole + 1
    StateRole = Qt.ItemDataRole.UserRole + 2
    ErrorRole = Qt.ItemDataRole.UserRole + 3

    #: (row): a view asked for this row's thumbnail and its decoding has not been asked for yet
    #: (:attr:`decode_requested`): it is about to paint it (or, once, to size its grid by it). Its
    #: decoding goes ahead of the others (:mod:`gui.sample_list`).
    wanted = Signal(int)

    def __init__(self, sample: Sample, parent=None):
        super().__init__(parent)
        self.sample = sample
        #: Rows whose decoding was submitted (by whoever schedules it: gui.sample_list).
        self.decode_requested: set[int] = set()
        self._thumbs: dict[int, QImage] = {}
        self._pixmaps: dict[int, QIcon] = {}
        self._loading_icon: QIcon | None = None
        self._counts = {PENDING: 0, READY: 0, UNREADABLE: 0}  # kept up to date: no O(n) recount
        for im in sample.images:
            self._counts[im.state] = self._counts.get(im.state, 0) + 1
        theme.follow(self, self._palette_changed)

    def _palette_changed(self) -> None:
        """The drawn tiles and the error text are in the palette's colours: drawn again."""
        self._loading_icon = None
        for row in [r for r in self._pixmaps if self.sample.images[r].state != READY]:
            del self._pixmaps[row]
        if self.sample.images:
            self.dataChanged.emit(self.index(0), self.index(len(self.sample.images) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.sample.images)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.sample.images):
            return None
        row = index.row()
        image = self.sample.images[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return image.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(row, image)
        if role == Qt.ItemDataRole.ToolTipRole:
            if image.state == UNREADABLE:
                return f"{image.path}\nunreadable: {image.error}"
            if image.size is not None:
                return f"{image.path}\n{image.size[0]} × {image.size[1]} px"
            return str(image.path)
        if role == Qt.ItemDataRole.ForegroundRole and image.state == UNREADABLE:
            return theme.qcolor(Tone.ERROR)
        if role == self.PathRole:
            return image.path
        if role == self.StateRole:
            return image.state
        if role == self.ErrorRole:
            return image.error
        return None

    def _decoration(self, row: int, image: SampleImage) -> QIcon:
        # An icon with the same pixmap for the selected state: Qt would otherwise tint the
        # thumbnail with the selection colour, hiding the very colours being screened.
        icon = self._pixmaps.get(row)
        if icon is not None:
            return icon
        if image.state == READY and row in self._thumbs:
            pixmap = QPixmap.fromImage(self._thumbs[row])
        elif image.state == UNREADABLE:
            pixmap = QPixmap.fromImage(placeholder_image(THUMB_SIZE, THUMB_SIZE, "Unreadable",
                                                         image.error or "", error=True))
        else:
            if row not in self.decode_requested:  # a view paints it (views ask only for what they show)
                self.wanted.emit(row)
            if self._loading_icon is None:
                self._loading_icon = _icon(QPixmap.fromImage(placeholder_image(THUMB_SIZE, THUMB_SIZE, "Loading…")))
            return self._loading_icon
        icon = _icon(pixmap)
        self._pixmaps[row] = icon
        return icon

    def row_of(self, path: Path) -> int:
        for row, image in enumerate(self.sample.images):
            if image.path == path:
                return row
        return -1

    def _set_state(self, entry: SampleImage, state: str) -> None:
        self._counts[entry.state] -= 1
        self._counts[state] = self._counts.get(state, 0) + 1
        entry.state = state

    def set_thumbnail(self, row: int, image: QImage, size: tuple[int, int] | None) -> None:
        entry = self.sample.images[row]
        self._set_state(entry, READY)
        entry.error = None
        entry.size = size or entry.size
        self._thumbs[row] = image
        self._changed(row)

    def set_unreadable(self, row: int, reason: str) -> None:
        entry = self.sample.images[row]
        self._set_state(entry, UNREADABLE)
        entry.error = reason
        self._thumbs.pop(row, None)
        self._changed(row)

    def _changed(self, row: int) -> None:
        self._pixmaps.pop(row, None)
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def count(self, state: str) -> int:
        return self._counts.get(state, 0)
