"""The selected sample's fields: Sample ID, Patient ID, Operator and Folder, their lock and their edits.

:class:`SampleFields` is a mixin of :class:`gui.samples.SamplesPanel`. It builds the "Sample" box
(the fields, the ID warning, the lock line and the Classify button), fills it for the selected
sample, keeps it read-only while the panel's ``lock_reason`` says so (a signed-off sample), and
writes what the person types back to the sample: an empty or clashing sample ID is refused on the
spot and reverted when editing ends. A finished edit becomes the panel's ``sample_edited`` signal,
which the main window stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QToolButton,
)

from gui import theme
from gui.theme import Tone
from gui.workbench import Sample

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance


class SampleFields:
    """The "Sample" box and its edits, mixed into :class:`gui.samples.SamplesPanel` (a widget: what
    this makes is the panel's)."""

    # What the panel provides.
    samples: list[Sample]
    lock_reason: Callable[[Sample], str]
    sample_edited: SignalInstance
    current_sample: Callable[[], Sample | None]
    relabel_sample: Callable[[Sample], None]
    unique_sample_id: Callable[..., str]

    def build_details_box(self) -> QGroupBox:
        """The "Sample" box: the ID fields, the folder, the lock line and the Classify button (hidden
        until the window gives it an action)."""
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
        return self.details

    def show_sample_fields(self, sample: Sample) -> None:
        """Fill the box for the newly selected ``sample`` (an old ID warning goes)."""
        self.sample_id_edit.setText(sample.sample_id)
        self.patient_id_edit.setText(sample.patient_id)
        self.operator_edit.setText(sample.operator)
        self.folder_label.setText(str(sample.folder or ""))
        self.folder_label.setToolTip(str(sample.folder or ""))
        self.id_warning.hide()
        self._apply_lock(sample)

    def refresh_sample_fields(self, sample: Sample) -> None:
        """The selected sample's IDs or lock changed outside the panel (a field being typed in keeps
        what is typed)."""
        for edit, value in ((self.sample_id_edit, sample.sample_id), (self.patient_id_edit, sample.patient_id),
                            (self.operator_edit, sample.operator)):
            if edit.text() != value and not edit.hasFocus():
                edit.setText(value)
        self._apply_lock(sample)

    def _apply_lock(self, sample: Sample) -> None:
        reason = self.lock_reason(sample)
        for edit in (self.sample_id_edit, self.patient_id_edit, self.operator_edit):
            edit.setReadOnly(bool(reason))
        self.lock_label.setText(reason)
        theme.style(self.lock_label, Tone.OK if sample.signed_off else Tone.MUTED)
        self.lock_label.setVisible(bool(reason))

    def _on_field_finished(self) -> None:
        sample = self.current_sample()
        if sample is not None and not self.lock_reason(sample):
            self.sample_edited.emit(sample)

    def _on_sample_id_edited(self, text: str) -> None:
        sample = self.current_sample()
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
            self.relabel_sample(sample)

    def _on_sample_id_finished(self) -> None:
        sample = self.current_sample()
        if sample is None:
            return
        if self.sample_id_edit.text().strip() != sample.sample_id:
            if not self.sample_id_edit.text().strip():
                base = sample.folder.name if sample.folder is not None else "sample"
                sample.sample_id = self.unique_sample_id(base, exclude=sample)
                self.relabel_sample(sample)
            self.sample_id_edit.setText(sample.sample_id)  # revert an invalid entry
        self.id_warning.hide()

    def _on_patient_id_edited(self, text: str) -> None:
        sample = self.current_sample()
        if sample is not None and not self.lock_reason(sample):
            sample.patient_id = text.strip()

    def _on_operator_edited(self, text: str) -> None:
        sample = self.current_sample()
        if sample is not None and not self.lock_reason(sample):
            sample.operator = text.strip()
