"""Edit ▸ Settings…: the active model, the device, the review threshold, the lab's name, the
colour theme (Appearance) and the lab database (its URL, never its password; "Test connection"
runs on a worker thread, :class:`gui.lab_database.ConnectionTest`).

Who reviews and signs is not a setting: it is the window's identity (the OS login or a signed-in
ALLSight account). The active model and the review threshold are the models' business: for an
identity without the models permission they are shown, not editable (``model_refusal`` says why).

The dialog edits a copy of :class:`gui.settings.Settings`; :meth:`SettingsDialog.settings`
returns the edited copy, which the main window saves (``gui.settings.save_settings``) and
applies. Nothing here loads a model: the card (a small JSON file) is read to say which model a
choice means and what its own review threshold is.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.lab_database import ConnectionTest
from gui.lab_database_url import URL_EXAMPLE, has_password, url_problem, without_password
from gui.settings import DEVICES, PRECISIONS, THEMES, Settings
from gui.theme import Tone

SHIPPED_CHOICES: tuple[tuple[str, str], ...] = (
    ("The active model (default; Tools ▸ Models…)", ""),
    ("ResNet-18 (shipped)", "resnet18"),
    ("Baseline CNN (shipped, smaller and faster)", "baseline"),
)
FILE_CHOICE = "__file__"
DEVICE_LABELS = {"auto": "Automatic (GPU if available)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)",
                 "mps": "Apple GPU (MPS)"}
PRECISION_LABELS = {"auto": "Automatic (INT8 where it is faster here)", "fp32": "fp32 always",
                    "int8": "INT8 with its fp32 check"}
PRECISION_TIP = ("INT8 runs the network about twice as fast on most CPUs. Wherever its answer lies near a "
                 "decision (the call, the review threshold, the out-of-distribution threshold) the image goes "
                 "through fp32 again, so calls and flags are fp32's (measured for each model: its card).")
THEME_LABELS = {"system": "As the desktop (default)", "light": "Light", "dark": "Dark"}
LAB_DATABASE_NOTE = ("Blank: this workstation keeps its own result history. The password is never saved: "
                     "ALLSight takes it from ~/.pgpass or $ALLSIGHT_DB_PASSWORD, or asks for it at start-up. "
                     "A change takes effect when ALLSight next starts.")
PASSWORD_REMOVED = ("The password was taken out of the URL: ALLSight never saves it (it is asked for at "
                    "start-up, or taken from ~/.pgpass or $ALLSIGHT_DB_PASSWORD). Press OK again to save.")


def describe_model(model: str | None) -> tuple[str, float | None]:
    """A line about ``model`` (None: the library's active one) — id, version, architecture, its
    INT8 graph's measured agreement, or why it cannot be used — and its card's review threshold
    (None when unknown)."""
    from engine.core.errors import AllSightError
    from engine.models.resolve import resolve_model_card

    try:
        card = resolve_model_card(model)
    except (AllSightError, OSError) as exc:
        return f"⚠ Not available: {exc}", None
    int8 = card.graphs.get("int8", {}).get("agreement", {})
    int8_note = (f" · INT8 graph: fp32's call on {int8['call_agreement']:.2%} of {int8['images']} test images"
                 if "call_agreement" in int8 else "")
    return (f"{card.id} {card.version} · {card.architecture}, {card.image_size} px · "
            f"review threshold {card.review_threshold:.3f}{int8_note}"), card.review_threshold


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None, *, model_refusal: str = ""):
        super().__init__(parent)
        self.setWindowTitle("ALLSight — settings")
        self.setMinimumWidth(560)
        self._original = settings

        self.model_combo = QComboBox(self)
        for text, value in SHIPPED_CHOICES:
            self.model_combo.addItem(text, value)
        self.model_combo.addItem("A model file (.safetensors)…", FILE_CHOICE)
        self.model_path_edit = QLineEdit(self)
        self.model_path_edit.setPlaceholderText("path to a .safetensors model (its .json card beside it)")
        self.browse_button = QPushButton("Browse…", self)
        self.browse_button.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.model_path_edit, 1)
        path_row.addWidget(self.browse_button)
        self.model_info = QLabel(self)
        self.model_info.setWordWrap(True)
        theme.style(self.model_info, Tone.MUTED)

        self.device_combo = QComboBox(self)
        for device in DEVICES:
            self.device_combo.addItem(DEVICE_LABELS.get(device, device), device)
        self.precision_combo = QComboBox(self)
        for precision in PRECISIONS:
            self.precision_combo.addItem(PRECISION_LABELS.get(precision, precision), precision)
        self.precision_combo.setToolTip(PRECISION_TIP)

        self.threshold_edit = QLineEdit(self)
        validator = QDoubleValidator(0.0, 1.0, 4, self)
        validator.setNotation(QDoubleValidator.Notation.StandardNotation)
        self.threshold_edit.setValidator(validator)
        self.threshold_edit.setToolTip("Images whose confidence is below this are flagged for review. "
                                       "Leave blank to use the model card's value.")
        self.lab_edit = QLineEdit(self)
        self.lab_edit.setPlaceholderText("printed on reports")

        form = QFormLayout()
        form.addRow("Active model", self.model_combo)
        form.addRow("", path_row)
        form.addRow("", self.model_info)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision (CPU)", self.precision_combo)
        form.addRow("Review threshold", self.threshold_edit)
        form.addRow("Lab name", self.lab_edit)
        self.independent_check = QCheckBox("The person who signs a sample off may not be one who classified it",
                                           self)
        form.addRow("Sign-off", self.independent_check)
        self.theme_combo = QComboBox(self)
        for value in THEMES:
            self.theme_combo.addItem(THEME_LABELS.get(value, value), value)
        self.theme_combo.setToolTip("Light and Dark are ALLSight's own; the default follows the desktop")
        appearance = QGroupBox("Appearance", self)
        QFormLayout(appearance).addRow("Theme", self.theme_combo)
        lab_database = self._build_lab_database()
        self.error_label = QLabel(self)
        theme.style(self.error_label, Tone.ERROR)
        self.error_label.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(appearance)
        layout.addWidget(lab_database)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.model_combo.currentIndexChanged.connect(self._model_choice_changed)
        self.model_path_edit.editingFinished.connect(self._update_model_info)
        self._load(settings)
        self.model_refusal = model_refusal
        if model_refusal:  # shown, not editable: the model decides what is flagged for review
            for widget in (self.model_combo, self.model_path_edit, self.browse_button, self.threshold_edit):
                widget.setEnabled(False)
                widget.setToolTip(f"Changing the model or its review threshold: {model_refusal}")

    def _build_lab_database(self) -> QGroupBox:
        """The "Lab database" group: the URL, what happens to the password, Test connection."""
        self.lab_db_edit = QLineEdit(self)
        self.lab_db_edit.setPlaceholderText(URL_EXAMPLE)
        self.lab_db_edit.setToolTip("The lab's shared PostgreSQL database; blank for this workstation's own")
        self.test_button = QPushButton("Test connection", self)
        self.test_button.setToolTip("Connect and read what is there, changing nothing")
        self.test_button.clicked.connect(self.test_connection)
        row = QHBoxLayout()
        row.addWidget(self.lab_db_edit, 1)
        row.addWidget(self.test_button)
        note = QLabel(LAB_DATABASE_NOTE, self)
        note.setWordWrap(True)
        theme.style(note, Tone.MUTED)
        self.lab_db_result = QLabel(self)
        self.lab_db_result.setWordWrap(True)
        self.lab_db_result.hide()
        self.connection_test = ConnectionTest(self)
        self.connection_test.finished.connect(self._connection_tested)
        group = QGroupBox("Lab database", self)
        box = QVBoxLayout(group)
        box.addLayout(row)
        box.addWidget(note)
        box.addWidget(self.lab_db_result)
        return group

    def _show_lab_db_result(self, text: str, tone: Tone) -> None:
        self.lab_db_result.setText(text)
        theme.style(self.lab_db_result, tone)
        self.lab_db_result.show()

    def test_connection(self) -> bool:
        """Test the URL in the field off the GUI thread (False: nothing to test, or one runs)."""
        url = self.lab_db_edit.text().strip()
        problem = url_problem(url) or ("" if url else "No lab database: this workstation keeps its own "
                                       "result history.")
        if problem:
            self._show_lab_db_result(problem, Tone.ERROR)
            return False
        if not self.connection_test.start(url):
            return False
        self.test_button.setEnabled(False)
        self._show_lab_db_result("Testing the connection…", Tone.MUTED)
        return True

    def _connection_tested(self, ok: bool, text: str) -> None:
        self.test_button.setEnabled(True)
        self._show_lab_db_result(("✓ " if ok else "✗ ") + text, Tone.OK if ok else Tone.ERROR)

    def done(self, result: int) -> None:
        # Accepted, cancelled or closed: a connection test still running is waited for here, so
        # no worker thread outlives the dialog.
        self.connection_test.shutdown()
        super().done(result)

    # ------------------------------------------------------------------ values
    def _load(self, s: Settings) -> None:
        index = self.model_combo.findData(s.active_model)
        if index < 0:
            index = self.model_combo.findData(FILE_CHOICE)
            self.model_path_edit.setText(s.active_model)
        self.model_combo.setCurrentIndex(index)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(s.device)))
        self.precision_combo.setCurrentIndex(max(0, self.precision_combo.findData(s.precision)))
        self.threshold_edit.setText("" if s.review_threshold_override is None else f"{s.review_threshold_override:g}")
        self.lab_edit.setText(s.lab_name)
        self.independent_check.setChecked(s.require_independent_reviewer)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(s.theme)))
        self.lab_db_edit.setText(s.lab_database)
        self._model_choice_changed()

    def chosen_model(self) -> str:
        value = self.model_combo.currentData()
        return self.model_path_edit.text().strip() if value == FILE_CHOICE else value

    def _model_choice_changed(self, *_args) -> None:
        is_file = self.model_combo.currentData() == FILE_CHOICE
        self.model_path_edit.setEnabled(is_file)
        self.browse_button.setEnabled(is_file)
        self._update_model_info()

    def _update_model_info(self) -> None:
        model = self.chosen_model()
        if not model and self.model_combo.currentData() == FILE_CHOICE:
            self.model_info.setText("Choose a model file.")
            self.threshold_edit.setPlaceholderText("blank = the model card's")
            return
        text, threshold = describe_model(model or None)  # "": the library's active model
        self.model_info.setText(text)
        self.threshold_edit.setPlaceholderText(
            f"blank = the model card's ({threshold:.3f})" if threshold is not None else "blank = the model card's")

    def _browse(self) -> None:
        from gui import dialogs

        current = self.model_path_edit.text().strip()
        start = str(Path(current).parent) if current else ""
        path = dialogs.choose_model_file(self, start)
        if path:
            self.model_path_edit.setText(path)
            self._update_model_info()

    def _problem(self) -> str:
        if self.model_combo.currentData() == FILE_CHOICE and not self.model_path_edit.text().strip():
            return "Choose a model file, or one of the shipped models."
        text = self.threshold_edit.text().strip()
        if text:
            try:
                value = float(text.replace(",", "."))
            except ValueError:
                return "The review threshold must be a number between 0 and 1 (or blank)."
            if not 0.0 <= value <= 1.0:
                return "The review threshold must be between 0 and 1 (or blank)."
        return url_problem(self.lab_db_edit.text())

    def _accept(self) -> None:
        problem = self._problem()
        if problem:
            self.error_label.setText(problem)
            self.error_label.show()
            return
        if has_password(self.lab_db_edit.text()):  # never saved: take it out, and say so before saving
            self.lab_db_edit.setText(without_password(self.lab_db_edit.text()))
            self._show_lab_db_result(PASSWORD_REMOVED, Tone.WARNING)
            return
        self.accept()

    def settings(self) -> Settings:
        """The edited settings (call after the dialog was accepted)."""
        text = self.threshold_edit.text().strip().replace(",", ".")
        return self._original.replace(
            active_model=self.chosen_model() or self._original.active_model,
            device=self.device_combo.currentData(),
            precision=self.precision_combo.currentData(),
            review_threshold_override=float(text) if text else None,
            lab_name=self.lab_edit.text().strip(),
            require_independent_reviewer=self.independent_check.isChecked(),
            theme=self.theme_combo.currentData(),
            lab_database=without_password(self.lab_db_edit.text()),
        )


def edit_settings(parent: QWidget | None, settings: Settings, *, model_refusal: str = "") -> Settings | None:
    """The settings dialog: the edited Settings, or None when cancelled (``model_refusal``: why
    the model and threshold cannot be changed, "" when they can)."""
    dialog = SettingsDialog(settings, parent, model_refusal=model_refusal)
    try:
        if not dialog.exec():
            return None
        return dialog.settings()
    finally:
        dialog.deleteLater()
