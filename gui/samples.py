"""Samples: one per opened folder, with its IDs and a thumbnail strip of its images.

A :class:`~gui.workbench.Sample` is plain data (Qt-free, in :mod:`gui.workbench`).
Its thumbnails are :mod:`gui.thumbnails`. :class:`SamplesPanel` is the left panel of the main
window: the sample list, the ID fields and the thumbnails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.io.images import ScanResult, scan_paths
from gui import theme
from gui.theme import Tone
from gui.thumbnails import THUMB_SIZE, ThumbnailModel, ThumbnailResult, make_thumbnail
from gui.workbench import PENDING, UNREADABLE, Sample, SampleImage, sample_folders
from gui.workers import PRIORITY_BACKGROUND, TaskError, WorkerPool

log = logging.getLogger("allsight.gui.samples")

LABEL_REFRESH_MS = 100


def scan_sample_paths(paths: list[Path]) -> ScanResult:
    """Worker-thread wrapper (a network folder can take a while to list)."""
    return scan_paths(paths)


class SamplesPanel(QWidget):
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
        self._workers = workers
        #: The Operator field of samples opened from now on (the window sets it to who acts).
        self.default_operator = default_operator
        self.samples: list[Sample] = []
        self._models: dict[int, ThumbnailModel] = {}  # id(sample) -> model
        self._thumbs_requested: set[int] = set()  # id(sample) whose thumbnails were asked for
        self._dirty: set[int] = set()  # id(sample) whose labels need refreshing
        self._label_timer = QTimer(self)
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(LABEL_REFRESH_MS)
        self._label_timer.timeout.connect(self._refresh_dirty_labels)
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

        self.sample_list = QListWidget(self)
        self.sample_list.setMaximumHeight(170)
        self.sample_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sample_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.sample_list.setUniformItemSizes(True)
        self.sample_list.setToolTip("Samples opened now and earlier (the result history)")
        self.sample_list.setAcceptDrops(False)
        self.sample_list.currentRowChanged.connect(self._on_sample_row_changed)

        # Empty state
        self.empty_hint = QLabel(
            "No samples yet.\n\nFile ▸ Open folder(s)… or drop folders onto the window.\n"
            "Each folder becomes one sample; its images are listed here.", self)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        theme.style(self.empty_hint, Tone.MUTED)

        # Details of the selected sample
        self.sample_id_edit = QLineEdit(self)
        self.sample_id_edit.setPlaceholderText("defaults to the folder name")
        self.patient_id_edit = QLineEdit(self)
        self.patient_id_edit.setPlaceholderText("optional")
        self.operator_edit = QLineEdit(self)
        self.operator_edit.setPlaceholderText("who prepared or scanned it")
        self.operator_edit.setToolTip("Describes the sample; reviews and sign-offs are recorded under the signed-in "
                                      "identity, never this name")
        for edit in (self.sample_id_edit, self.patient_id_edit, self.operator_edit):
            edit.setAcceptDrops(False)  # a dropped folder opens a sample instead of typing its path
        self.folder_label = QLabel(self)
        self.folder_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        theme.style(self.folder_label, Tone.MUTED)
        self.id_warning = QLabel(self)
        theme.style(self.id_warning, Tone.ERROR)
        self.id_warning.setWordWrap(True)
        self.id_warning.hide()
        self.sample_id_edit.textEdited.connect(self._on_sample_id_edited)
        self.sample_id_edit.editingFinished.connect(self._on_sample_id_finished)
        self.patient_id_edit.textEdited.connect(self._on_patient_id_edited)
        self.operator_edit.textEdited.connect(self._on_operator_edited)
        for edit in (self.sample_id_edit, self.patient_id_edit, self.operator_edit):
            edit.editingFinished.connect(self._on_field_finished)
        self.lock_label = QLabel(self)
        self.lock_label.setWordWrap(True)
        theme.style(self.lock_label, Tone.OK)
        self.lock_label.hide()

        self.details = QGroupBox("Sample", self)
        form = QFormLayout(self.details)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Sample ID", self.sample_id_edit)
        form.addRow("", self.id_warning)
        form.addRow("Patient ID", self.patient_id_edit)
        form.addRow("Operator", self.operator_edit)
        form.addRow("Folder", self.folder_label)
        form.addRow("", self.lock_label)
        self.classify_button = QToolButton(self)
        self.classify_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.classify_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.classify_button.setMinimumHeight(30)
        self.classify_button.setStyleSheet("QToolButton { font-weight: bold; }")
        self.classify_button.hide()  # shown once an action is set
        form.addRow(self.classify_button)

        self.images_label = QLabel(self)
        self.images_label.setWordWrap(True)
        theme.follow(self, self._update_images_label)  # "n unreadable" is in the error tone

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
        self._current: Sample | None = None

    # ------------------------------------------------------------------ adding samples
    def set_open_action(self, action) -> None:
        self.open_button.setDefaultAction(action)

    def set_classify_action(self, action) -> None:
        self.classify_button.setDefaultAction(action)
        self.classify_button.show()

    def find_sample(self, folder: Path) -> Sample | None:
        folder = Path(folder).resolve()
        for sample in self.samples:
            if sample.folder is not None and sample.folder.resolve() == folder:
                return sample
        return None

    def unique_sample_id(self, base: str, *, exclude: Sample | None = None) -> str:
        taken = {s.sample_id for s in self.samples if s is not exclude}
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base} ({n})", n + 1
        return candidate

    def open_paths(self, paths: list[str | Path]) -> None:
        """Add one sample per folder; loose image files become one sample named after their common
        folder, or "loose-files" (:mod:`engine.store.naming`, as the CLI names them). The folders
        are scanned in the worker pool; samples appear when scanned."""
        folders = [Path(p) for p in paths if Path(p).is_dir()]
        files = [Path(p) for p in paths if not Path(p).is_dir()]
        for folder in folders:
            existing = self.find_sample(folder)
            if existing is not None:
                self.select_sample(existing)
                self.status_message.emit(f"{folder} is already open as sample {existing.sample_id}.")
                continue
            self._scan([folder], folder)
        if files:
            self._scan(files, None)

    def _scan(self, paths: list[Path], folder: Path | None) -> None:
        where = str(folder) if folder is not None else f"{len(paths)} file(s)"
        self.status_message.emit(f"Scanning {where}…")
        self._workers.submit(
            scan_sample_paths, paths, priority=PRIORITY_BACKGROUND, name="scan",
            on_result=lambda result: self._on_scanned(paths, folder, result),
        )

    def _on_scanned(self, paths: list[Path], folder: Path | None, result: ScanResult) -> None:
        from engine.store.naming import loose_files_folder, sample_name

        sample_folder = folder
        if folder is None:  # files picked one by one: their common folder, if they have one (as the CLI)
            common = loose_files_folder(result.images or paths)
            sample_folder = Path(common) if common else None
        base = sample_folder if sample_folder is not None else paths[0].parent
        if not result.images:
            self.status_message.emit(
                f"No images found in {base}"
                + (f" ({len(result.skipped)} other file(s) skipped)" if result.skipped else "") + ".")
            return
        if folder is not None and self.find_sample(folder) is not None:
            return  # opened twice in quick succession
        parts = sample_folders(folder, result.images) if folder is not None else []
        if parts and self.confirm_split(folder, [p for p, _ in parts]):
            for sub, images in parts:
                if self.find_sample(sub) is None:
                    self.add_sample(Sample(sample_id=self.unique_sample_id(sample_name(sub)), folder=sub,
                                           images=[SampleImage(p) for p in images], operator=self.default_operator),
                                    select=sub == parts[0][0])
            return
        sample = Sample(
            sample_id=self.unique_sample_id(sample_name(sample_folder if sample_folder is not None else "")),
            folder=sample_folder,
            images=[SampleImage(p) for p in result.images],
            operator=self.default_operator,
            skipped=result.skipped,
        )
        self.add_sample(sample)

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

    def _ensure_thumbnails(self, sample: Sample) -> None:
        if id(sample) in self._thumbs_requested:
            return
        self._thumbs_requested.add(id(sample))
        model = self._models[id(sample)]
        for row, image in enumerate(sample.images):
            self._workers.submit(
                make_thumbnail, image.path, THUMB_SIZE, priority=PRIORITY_BACKGROUND, name="thumbnail",
                on_result=lambda res, m=model, r=row: self._on_thumbnail(m, r, res),
                on_error=lambda err, m=model, r=row: self._on_thumbnail_error(m, r, err),
            )

    def refresh_sample(self, sample: Sample) -> None:
        """The sample's label, IDs or lock state changed outside the panel."""
        row = self._row_of(sample)
        if row >= 0:
            self.sample_list.item(row).setText(self._sample_label(sample))
        if sample is self._current:
            for edit, value in ((self.sample_id_edit, sample.sample_id), (self.patient_id_edit, sample.patient_id),
                                (self.operator_edit, sample.operator)):
                if edit.text() != value and not edit.hasFocus():
                    edit.setText(value)
            self._apply_lock(sample)

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
                    self._update_images_label()

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
        self.sample_id_edit.setText(sample.sample_id)
        self.patient_id_edit.setText(sample.patient_id)
        self.operator_edit.setText(sample.operator)
        self.folder_label.setText(str(sample.folder or ""))
        self.folder_label.setToolTip(str(sample.folder or ""))
        self.id_warning.hide()
        self._apply_lock(sample)
        self.pages.setCurrentIndex(1)
        self._ensure_thumbnails(sample)
        model = self.model_for(sample)
        old_selection = self.thumb_view.selectionModel()
        self.thumb_view.setModel(model)
        if old_selection is not None:
            old_selection.deleteLater()
        self.thumb_view.selectionModel().currentChanged.connect(self._on_current_thumb_changed)
        self._update_images_label()
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

    # ------------------------------------------------------------------ editing
    def _apply_lock(self, sample: Sample) -> None:
        reason = self.lock_reason(sample)
        for edit in (self.sample_id_edit, self.patient_id_edit, self.operator_edit):
            edit.setReadOnly(bool(reason))
        self.lock_label.setText(reason)
        theme.style(self.lock_label, Tone.OK if sample.signed_off else Tone.MUTED)
        self.lock_label.setVisible(bool(reason))

    def _on_field_finished(self) -> None:
        if self._current is not None and not self.lock_reason(self._current):
            self.sample_edited.emit(self._current)
    def _on_sample_id_edited(self, text: str) -> None:
        sample = self._current
        if sample is None or self.lock_reason(sample):
            return
        text = text.strip()
        clash = any(s.sample_id == text for s in self.samples if s is not sample)
        if not text:
            self.id_warning.setText("A sample ID is required (the folder name is used if left empty).")
        elif clash:
            self.id_warning.setText("Another open sample already has this ID.")
        self.id_warning.setVisible(not text or clash)
        if text and not clash:
            sample.sample_id = text
            self.sample_list.item(self._row_of(sample)).setText(self._sample_label(sample))

    def _on_sample_id_finished(self) -> None:
        sample = self._current
        if sample is None:
            return
        if self.sample_id_edit.text().strip() != sample.sample_id:
            if not self.sample_id_edit.text().strip():
                base = sample.folder.name if sample.folder is not None else "sample"
                sample.sample_id = self.unique_sample_id(base, exclude=sample)
                self.sample_list.item(self._row_of(sample)).setText(self._sample_label(sample))
            self.sample_id_edit.setText(sample.sample_id)  # revert an invalid entry
        self.id_warning.hide()

    def _on_patient_id_edited(self, text: str) -> None:
        if self._current is not None and not self.lock_reason(self._current):
            self._current.patient_id = text.strip()

    def _on_operator_edited(self, text: str) -> None:
        if self._current is not None and not self.lock_reason(self._current):
            self._current.operator = text.strip()

    # ------------------------------------------------------------------ labels
    def _sample_label(self, sample: Sample) -> str:
        model = self._models.get(id(sample))
        bad = model.count(UNREADABLE) if model is not None else sample.unreadable_count
        label = f"{sample.sample_id}  ({len(sample.images)} images{f', {bad} unreadable' if bad else ''})"
        if sample.signed_off:
            label += " · ✔ signed off"
        elif sample.status_note:
            label += f" · {sample.status_note}"
        return label

    def _update_images_label(self) -> None:
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
