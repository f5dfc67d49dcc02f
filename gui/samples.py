"""Samples: one per opened folder, with its IDs and a thumbnail strip of its images.

A :class:`~gui.workbench.Sample` is plain data (Qt-free, in :mod:`gui.workbench`).
Its thumbnails are :mod:`gui.thumbnails`. :class:`SamplesPanel` is the left panel of the main
window: the sample list, the ID fields and the thumbnails, laid out. What they do is in three
mixins of the panel:

* :class:`~gui.sample_opening.SampleOpening` (:mod:`gui.sample_opening`) — opened folders and files
  scanned in the worker pool and grouped into samples, with free sample IDs.
* :class:`~gui.sample_list.SampleList` (:mod:`gui.sample_list`) — the listed samples, their
  thumbnails' progress and labels, and the selected sample and image.
* :class:`~gui.sample_fields.SampleFields` (:mod:`gui.sample_fields`) — the selected sample's ID
  fields: filled, locked once signed off, and edited.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.sample_fields import SampleFields
from gui.sample_list import SampleList
from gui.sample_opening import SampleOpening
from gui.theme import Tone
from gui.thumbnails import THUMB_SIZE
from gui.workers import WorkerPool


class SamplesPanel(QWidget, SampleList, SampleFields, SampleOpening):
    """Left panel: opened samples, the selected sample's IDs and its thumbnails."""

    #: (Sample, row) of the image to show, or (None, -1) when there is none.
    current_image_changed = Signal(object, int)
    #: The selected sample changed (Sample or None).
    current_sample_changed = Signal(object)
    #: A sample was added (Sample).
    sample_added = Signal(object)
    #: Thumbnail progress of a sample changed (Sample).
    sample_updated = Signal(object)
    #: The user finished editing the sample ID, patient ID or operator of a sample (Sample).
    sample_edited = Signal(object)
    #: A short message for the status bar.
    status_message = Signal(str)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None, *, default_operator: str = ""):
        super().__init__(parent)
        #: The worker pool: opened folders are scanned and thumbnails decoded in it.
        self.workers = workers
        #: The Operator field of samples opened from now on (the window sets it to who acts).
        self.default_operator = default_operator
        #: Asked when a folder holds no image itself but several sub-folders of images: open each
        #: sub-folder as its own sample? (The main window asks the person; default: one sample.)
        self.confirm_split: Callable[[Path, list[Path]], bool] = lambda folder, subfolders: False
        #: Why a sample's fields cannot be edited now ("" = editable); the main window extends it.
        self.lock_reason = lambda sample: (f"Signed off by {sample.signed_off_by}: reopen the sample to edit it."
                                           if sample.signed_off else "")

        # Header
        title = QLabel("<b>Samples</b>", self)
        self.open_button = QToolButton(self)
        self.open_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.open_button)

        # The samples (gui.sample_list)
        self.sample_list = self.build_sample_list()

        # Empty state
        self.empty_hint = QLabel(
            "No samples yet.\n\nFile ▸ Open folder(s)… or drop folders onto the window.\n"
            "Each folder becomes one sample; its images are listed here.", self)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        theme.style(self.empty_hint, Tone.MUTED)

        # Details of the selected sample (gui.sample_fields)
        self.details = self.build_details_box()

        self.images_label = QLabel(self)
        self.images_label.setWordWrap(True)
        theme.follow(self, self.update_images_label)  # "n unreadable" is in the error tone

        self.thumb_view = QListView(self)
        v = self.thumb_view
        v.setViewMode(QListView.ViewMode.IconMode)
        v.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        v.setGridSize(QSize(THUMB_SIZE + 14, THUMB_SIZE + 34))
        v.setResizeMode(QListView.ResizeMode.Adjust)
        v.setMovement(QListView.Movement.Static)
        v.setFlow(QListView.Flow.LeftToRight)
        v.setWrapping(True)
        v.setUniformItemSizes(True)
        v.setWordWrap(True)
        v.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        v.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        v.setDragEnabled(False)
        v.setAcceptDrops(False)
        v.setMinimumHeight(THUMB_SIZE + 50)

        sample_page = QWidget(self)
        sp = QVBoxLayout(sample_page)
        sp.setContentsMargins(0, 0, 0, 0)
        sp.addWidget(self.details)
        sp.addWidget(self.images_label)
        sp.addWidget(self.thumb_view, 1)

        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.empty_hint)
        self.pages.addWidget(sample_page)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(header)
        layout.addWidget(self.sample_list)
        layout.addWidget(self.pages, 1)
        self.sample_list.hide()

    # ------------------------------------------------------------------ actions
    def set_open_action(self, action) -> None:
        self.open_button.setDefaultAction(action)

    def set_classify_action(self, action) -> None:
        self.classify_button.setDefaultAction(action)
        self.classify_button.show()
