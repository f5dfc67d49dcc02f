"""The list of samples: what is listed, which sample and image are selected, and the thumbnails' progress.

:class:`SampleList` is a mixin of :class:`gui.samples.SamplesPanel`. It keeps the samples (opened
now at the top, the result history below) with one :class:`~gui.thumbnails.ThumbnailModel` each,
asks for a sample's thumbnails (:func:`~gui.thumbnails.make_thumbnail`) when it is opened or first
selected, and writes each sample's label ("n images, m unreadable", signed off).
Thumbnails are decoded visible first: a row a view is about to paint (:attr:`ThumbnailModel.wanted`)
is decoded at once; the others are fed to the pool a few at a time, in order, and held while a batch
runs (:meth:`SampleList.pause_offscreen_thumbnails`: their decoding would share the app's cores and
its interpreter with the batch and the event loop, issue #17). Selecting a sample shows its fields (:mod:`gui.sample_fields`) and thumbnails; the selected sample
and image are the panel's ``current_sample_changed`` and ``current_image_changed`` signals.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from gui import theme
from gui.theme import Tone
from gui.thumbnails import THUMB_SIZE, ThumbnailModel, ThumbnailResult, make_thumbnail
from gui.workbench import PENDING, UNREADABLE, Sample
from gui.workers import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE, TaskError

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QLabel, QListView, QStackedWidget

    from gui.workers import WorkerPool

# The samples panel's logger, under the name it had before the panel was split into modules.
log = logging.getLogger("allsight.gui.samples")

LABEL_REFRESH_MS = 100
#: Off-screen thumbnails in the worker pool at once (each ~1-3 ms: what the user asks for waits at most that).
OFFSCREEN_IN_FLIGHT = 2


class SampleList:
    """The samples, their thumbnail models and the selection, mixed into :class:`gui.samples.SamplesPanel`
    (a widget: what this makes is the panel's)."""

    # What the panel provides.
    workers: WorkerPool
    empty_hint: QLabel
    pages: QStackedWidget
    images_label: QLabel
    thumb_view: QListView
    current_image_changed: SignalInstance
    current_sample_changed: SignalInstance
    sample_added: SignalInstance
    sample_updated: SignalInstance
    status_message: SignalInstance
    show_sample_fields: Callable[[Sample], None]
    refresh_sample_fields: Callable[[Sample], None]

    def build_sample_list(self) -> QListWidget:
        """The list's state (no samples yet) and its widget, hidden until there is a choice to make."""
        self.samples: list[Sample] = []
        self._models: dict[int, ThumbnailModel] = {}  # id(sample) -> model
        self._thumbs_requested: set[int] = set()  # id(sample) whose thumbnails were asked for
        self._offscreen: deque[tuple[ThumbnailModel, int]] = deque()  # thumbnails to decode, in order
        self._offscreen_in_flight = 0  # of those, submitted to the pool and not delivered yet
        self._offscreen_paused = False
        self._dirty: set[int] = set()  # id(sample) whose labels need refreshing
        self._current: Sample | None = None
        self._label_timer = QTimer(self)
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(LABEL_REFRESH_MS)
        self._label_timer.timeout.connect(self._refresh_dirty_labels)

        self.sample_list = QListWidget(self)
        self.sample_list.setMaximumHeight(170)
        self.sample_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sample_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.sample_list.setUniformItemSizes(True)
        self.sample_list.setToolTip("Samples opened now and earlier (the result history)")
        self.sample_list.setAcceptDrops(False)
        self.sample_list.currentRowChanged.connect(self._on_sample_row_changed)
        return self.sample_list

    # ------------------------------------------------------------------ adding and removing
    def add_sample(self, sample: Sample, *, select: bool = True) -> Sample:
        """Add a sample opened now: at the top of the list (newest first), thumbnails decoded at
        once, selected."""
        self._insert(sample, 0)
        self.pages.setCurrentIndex(1)
        self._ensure_thumbnails(sample)
        self.sample_added.emit(sample)
        if select:
            self.select_sample(sample)
        self.status_message.emit(f"Opened sample {sample.sample_id}: {len(sample.images)} image(s).")
        return sample

    def add_history(self, samples: list[Sample]) -> None:
        """Add samples from the result history at the end of the list (they are older than what
        was opened in this session). Their thumbnails are decoded when first selected."""
        for sample in samples:
            self._insert(sample, len(self.samples))
        if samples and self._current is None:
            self.empty_hint.setText("Select a sample above, or open a folder\n(File ▸ Open folder(s)… or drop "
                                    "folders onto the window).")

    def _insert(self, sample: Sample, row: int) -> None:
        self.samples.insert(row, sample)
        self._models[id(sample)] = ThumbnailModel(sample, self)
        item = QListWidgetItem(self._sample_label(sample))
        item.setToolTip(str(sample.folder or ""))
        self.sample_list.blockSignals(True)  # the current row moves with the insert, not the sample
        self.sample_list.insertItem(row, item)
        if self._current is not None:
            self.sample_list.setCurrentRow(self._row_of(self._current))
        self.sample_list.blockSignals(False)
        self.sample_list.setVisible(len(self.samples) > 1 or any(s.from_history for s in self.samples))
        rows = max(2, min(8, len(self.samples)))  # as tall as its rows, up to eight
        self.sample_list.setMaximumHeight(rows * max(18, self.sample_list.sizeHintForRow(0)) + 6)

    def remove_sample(self, sample: Sample) -> bool:
        """Take a sample off the list (nothing is deleted: a stored sample is listed again from
        the result history at the next start). The next sample is selected. False if not listed."""
        if sample not in self.samples:
            return False
        row = self._row_of(sample)
        self.samples.pop(row)
        self._models.pop(id(sample), None)
        self._thumbs_requested.discard(id(sample))
        was_current = sample is self._current
        self.sample_list.blockSignals(True)
        self.sample_list.takeItem(row)
        self.sample_list.blockSignals(False)
        self.sample_list.setVisible(len(self.samples) > 1 or any(s.from_history for s in self.samples))
        if was_current:
            self._current = None
            if self.samples:
                self.sample_list.setCurrentRow(min(row, len(self.samples) - 1))
            self._on_sample_row_changed(self.sample_list.currentRow() if self.samples else -1)
        return True

    def refresh_sample(self, sample: Sample) -> None:
        """The sample's label, IDs or lock state changed outside the panel."""
        row = self._row_of(sample)
        if row >= 0:
            self.sample_list.item(row).setText(self._sample_label(sample))
        if sample is self._current:
            self.refresh_sample_fields(sample)

    # ------------------------------------------------------------------ thumbnails
    def _ensure_thumbnails(self, sample: Sample) -> None:
        if id(sample) in self._thumbs_requested:
            return
        self._thumbs_requested.add(id(sample))
        model = self._models[id(sample)]
        model.wanted.connect(lambda row, m=model: self._thumbnail_wanted(m, row))
        self._offscreen.extend((model, row) for row in range(len(sample.images)))
        self._feed_thumbnails()

    def pause_offscreen_thumbnails(self, paused: bool) -> None:
        """Hold (True) or resume the decoding of thumbnails nobody is looking at; the window holds
        them while a batch runs, so its first results and its speed are not shared with them
        (those on show are still decoded at once)."""
        self._offscreen_paused = paused
        self._feed_thumbnails()

    def _feed_thumbnails(self) -> None:
        """Keep :data:`OFFSCREEN_IN_FLIGHT` off-screen thumbnails in the pool, in row order (a few
        at a time, so the pool stays free for what the user asks for)."""
        while not self._offscreen_paused and self._offscreen_in_flight < OFFSCREEN_IN_FLIGHT and self._offscreen:
            model, row = self._offscreen.popleft()
            if self._models.get(id(model.sample)) is not model or row in model.decode_requested:
                continue  # the sample was removed, or the row was on show and is decoded already
            self._offscreen_in_flight += 1
            self._submit_thumbnail(model, row, PRIORITY_BACKGROUND, offscreen=True)

    def _thumbnail_wanted(self, model: ThumbnailModel, row: int) -> None:
        """A view is about to show ``row``: decode it now instead of when the feed gets to it."""
        if row not in model.decode_requested and self._models.get(id(model.sample)) is model:
            self._submit_thumbnail(model, row, PRIORITY_INTERACTIVE)

    def _submit_thumbnail(self, model: ThumbnailModel, row: int, priority: int, *, offscreen: bool = False) -> None:
        model.decode_requested.add(row)

        def done() -> None:
            if offscreen:
                self._offscreen_in_flight -= 1
                self._feed_thumbnails()

        def on_result(res: ThumbnailResult) -> None:
            self._on_thumbnail(model, row, res)
            done()

        def on_error(err: TaskError) -> None:
            done()
            self._on_thumbnail_error(model, row, err)

        self.workers.submit(make_thumbnail, model.sample.images[row].path, THUMB_SIZE, priority=priority,
                            name="thumbnail", on_result=on_result, on_error=on_error)

    def _on_thumbnail(self, model: ThumbnailModel, row: int, result: ThumbnailResult) -> None:
        if result.image is not None:
            model.set_thumbnail(row, result.image, result.size)
        else:
            log.info("unreadable image %s: %s", result.path, result.error)
            model.set_unreadable(row, result.error or "unknown reason")
        self._sample_progress(model.sample)

    def _on_thumbnail_error(self, model: ThumbnailModel, row: int, error: TaskError) -> None:
        from gui.errors import show_error

        model.set_unreadable(row, f"unexpected error ({type(error.exc).__name__}: {error.exc})")
        self._sample_progress(model.sample)
        show_error(self.window(), f"Unexpected error while reading {model.sample.images[row].path}: "
                                  f"{error.exc}", error.details)

    def _sample_progress(self, sample: Sample) -> None:
        # Labels are refreshed at most every LABEL_REFRESH_MS (a folder of 1,000 images sends
        # 1,000 thumbnails); the signal goes at once (the image on show may be unreadable).
        self._dirty.add(id(sample))
        model = self._models.get(id(sample))
        if model is not None and model.count(PENDING) == 0:
            self._label_timer.stop()
            self._refresh_dirty_labels()  # the last one: show the final state at once
        elif not self._label_timer.isActive():
            self._label_timer.start()
        self.sample_updated.emit(sample)

    def _refresh_dirty_labels(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for sample in self.samples:
            if id(sample) in dirty:
                row = self._row_of(sample)
                text = self._sample_label(sample)
                if row >= 0 and self.sample_list.item(row).text() != text:
                    self.sample_list.item(row).setText(text)
                if sample is self._current:
                    self.update_images_label()

    # ------------------------------------------------------------------ selection
    def model_for(self, sample: Sample) -> ThumbnailModel:
        return self._models[id(sample)]

    def current_sample(self) -> Sample | None:
        return self._current

    def current_model(self) -> ThumbnailModel | None:
        return self._models.get(id(self._current)) if self._current is not None else None

    def current_row(self) -> int:
        index = self.thumb_view.currentIndex()
        return index.row() if index.isValid() else -1

    def _row_of(self, sample: Sample) -> int:
        for row, s in enumerate(self.samples):
            if s is sample:
                return row
        return -1

    def select_sample(self, sample: Sample) -> None:
        row = self._row_of(sample)
        if row >= 0:
            if self.sample_list.currentRow() == row:
                self._on_sample_row_changed(row)
            else:
                self.sample_list.setCurrentRow(row)

    def _on_sample_row_changed(self, row: int) -> None:
        sample = self.samples[row] if 0 <= row < len(self.samples) else None
        if sample is self._current and sample is not None and self.thumb_view.model() is self.current_model():
            return
        self._current = sample
        if sample is None:
            self.thumb_view.setModel(None)
            self.pages.setCurrentIndex(0)
            self.current_sample_changed.emit(None)
            self.current_image_changed.emit(None, -1)
            return
        self.show_sample_fields(sample)
        self.pages.setCurrentIndex(1)
        self._ensure_thumbnails(sample)
        model = self.model_for(sample)
        old_selection = self.thumb_view.selectionModel()
        self.thumb_view.setModel(model)
        if old_selection is not None:
            old_selection.deleteLater()
        self.thumb_view.selectionModel().currentChanged.connect(self._on_current_thumb_changed)
        self.update_images_label()
        self.current_sample_changed.emit(sample)
        if model.rowCount() > 0:
            self.set_current_row(0)
        else:
            self.current_image_changed.emit(sample, -1)

    def set_current_row(self, row: int) -> bool:
        model = self.current_model()
        if model is None or not 0 <= row < model.rowCount():
            return False
        index = model.index(row)
        self.thumb_view.setCurrentIndex(index)
        self.thumb_view.scrollTo(index)
        return True

    def step_image(self, delta: int) -> bool:
        """Move to the next (+1) or previous (-1) image; False at either end."""
        model = self.current_model()
        if model is None or model.rowCount() == 0:
            return False
        row = self.current_row()
        target = row + delta if row >= 0 else 0
        if not 0 <= target < model.rowCount():
            self.status_message.emit("Last image of the sample." if delta > 0 else "First image of the sample.")
            return False
        return self.set_current_row(target)

    def _on_current_thumb_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.current_image_changed.emit(self._current, current.row() if current.isValid() else -1)

    # ------------------------------------------------------------------ labels
    def relabel_sample(self, sample: Sample) -> None:
        """Write a listed sample's label again (its ID was just edited)."""
        self.sample_list.item(self._row_of(sample)).setText(self._sample_label(sample))

    def _sample_label(self, sample: Sample) -> str:
        model = self._models.get(id(sample))
        bad = model.count(UNREADABLE) if model is not None else sample.unreadable_count
        label = f"{sample.sample_id}  ({len(sample.images)} images{f', {bad} unreadable' if bad else ''})"
        if sample.signed_off:
            label += " · ✔ signed off"
        elif sample.status_note:
            label += f" · {sample.status_note}"
        return label

    def update_images_label(self) -> None:
        """The line above the thumbnails: how many images, loading, unreadable, skipped."""
        sample = self._current
        if sample is None:
            self.images_label.setText("")
            return
        model = self.model_for(sample)
        parts = [f"{len(sample.images)} image(s)"]
        pending = model.count(PENDING)
        if pending:
            parts.append(f"{pending} loading")
        bad = model.count(UNREADABLE)
        if bad:
            parts.append(theme.span(Tone.ERROR, f"{bad} unreadable"))
        if sample.skipped:
            parts.append(f"{len(sample.skipped)} other file(s) skipped")
        self.images_label.setText(" · ".join(parts))
        self.images_label.setToolTip("\n".join(f"{s.path.name}: {s.reason}" for s in sample.skipped[:50]))
