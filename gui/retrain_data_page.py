"""The retraining wizard's first two steps: *Data* (which labelled images, counted per source and
class, with every problem that stops training) and *Settings* (base model, epochs,
augmentation, the guard against forgetting, and the time it will take on this machine).

The survey (:func:`engine.training.lab_training.survey`) decodes every image, so it runs in the
window's worker pool, never on the GUI thread; a newer survey replaces an older one's result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from engine import CLASS_IDS
from gui import theme
from gui.theme import Tone

if TYPE_CHECKING:
    from engine.training.lab_training import Survey
    from gui.workers import TaskError, WorkerPool


def run_survey(folders: list[str], store_path: str, seed: int = 0) -> Survey:
    """The survey, opening its own store connection (it runs in a worker thread)."""
    from engine.store.results import ResultStore
    from engine.training.lab_training import survey

    if not store_path:
        return survey(folders=folders, seed=seed)
    with ResultStore.open(store_path) as store:
        return survey(folders=folders, store=store, seed=seed)


class DataPage(QWizardPage):
    def __init__(self, workers: WorkerPool, store_path: str):
        super().__init__()
        self.setTitle("Data: the lab's labelled images")
        self.setSubTitle("Class folders (Benign/ Early/ Pre/ Pro/) and/or the reviewed images of signed-off "
                         "samples. Validation is held out by sample (patient), never by image.")
        self.workers = workers
        self.store_path = store_path
        self.survey: Survey | None = None
        self.error = ""
        self._generation = 0
        self.folder_list = QListWidget(self)
        add, remove = QPushButton("Add folder…", self), QPushButton("Remove", self)
        add.clicked.connect(self.choose_folder)
        remove.clicked.connect(self.remove_selected)
        self.store_check = QCheckBox("The reviewed images of signed-off samples in this lab's result database", self)
        self.store_check.setEnabled(bool(store_path))
        self.store_check.toggled.connect(self.refresh)
        self.replay_edit = QLineEdit(self)
        self.replay_edit.setPlaceholderText("optional: the original development set (replayed against forgetting)")
        self.skip_check = QCheckBox("Train without the files that cannot be read", self)
        self.skip_check.toggled.connect(self.completeChanged)
        self.counts_table = QTableWidget(0, len(CLASS_IDS) + 1, self)
        self.counts_table.setHorizontalHeaderLabels(["Source", *CLASS_IDS])
        self.counts_table.verticalHeader().hide()
        self.problems_label = QLabel(self)
        self.problems_label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Class folders:", self))
        layout.addWidget(self.folder_list)
        layout.addLayout(buttons)
        layout.addWidget(self.store_check)
        layout.addWidget(self.replay_edit)
        layout.addWidget(self.counts_table)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.skip_check)

    # ------------------------------------------------------------------ inputs
    def folders(self) -> list[str]:
        return [self.folder_list.item(i).text() for i in range(self.folder_list.count())]

    def add_folder(self, folder: str | Path) -> None:
        if str(folder) not in self.folders():
            self.folder_list.addItem(str(folder))
            self.refresh()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with Benign/ Early/ Pre/ Pro/", str(Path.home()))
        if folder:
            self.add_folder(folder)

    def remove_selected(self) -> None:
        for item in self.folder_list.selectedItems():
            self.folder_list.takeItem(self.folder_list.row(item))
        self.refresh()

    def store_used(self) -> str:
        return self.store_path if self.store_check.isChecked() else ""

    # ------------------------------------------------------------------ survey
    def refresh(self) -> None:
        self._generation += 1
        generation = self._generation
        self.survey, self.error = None, ""
        self.problems_label.setText("Counting…" if self.folders() or self.store_used() else
                                    "Add a class folder, or use the lab's reviewed images.")
        self.completeChanged.emit()
        if not self.folders() and not self.store_used():
            return
        self.workers.submit(run_survey, self.folders(), self.store_used(), name="retraining survey",
                            on_result=lambda s: self._surveyed(generation, s),
                            on_error=lambda e: self._failed(generation, e))

    def _surveyed(self, generation: int, survey: Survey) -> None:
        if generation != self._generation:
            return  # the inputs changed meanwhile
        self.survey = survey
        counts = survey.counts()
        self.counts_table.setRowCount(len(counts))
        for row, (source, per_class) in enumerate(sorted(counts.items())):
            self.counts_table.setItem(row, 0, QTableWidgetItem(str(source)))
            for col, c in enumerate(CLASS_IDS, start=1):
                self.counts_table.setItem(row, col, QTableWidgetItem(str(per_class[c])))
        problems = survey.problems
        taught = sum(im.via_label_next for im in survey.images)
        text = [f"{len(survey.images)} images: {len(survey.train)} for training, {len(survey.val)} held out"
                + (f"; {taught} reviewed in Label next." if taught else ".")]
        text += [("⛔ " if p.blocking else "⚠ ") + p.message for p in problems]
        self.problems_label.setText("\n".join(text))
        theme.style(self.problems_label, Tone.ERROR if any(p.blocking for p in problems) else None)
        self.completeChanged.emit()

    def _failed(self, generation: int, error: TaskError) -> None:
        if generation != self._generation:
            return
        self.error = str(error.exc)
        self.problems_label.setText(f"⛔ {self.error}")
        theme.style(self.problems_label, Tone.ERROR)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 (Qt's name)
        return self.survey is not None and not self.survey.blocking(self.skip_check.isChecked())


AUGMENT_PRESETS = (("", "Standard + the starting model's background swap (recommended)"),
                   ("standard", "Standard (flips, rotations, colour and focus changes)"),
                   ("microscope", "Microscope (standard + white balance and magnification changes)"),
                   ("cell", "Cell (background swap + strong stain changes; slower)"), ("none", "None"))


class SettingsPage(QWizardPage):
    def __init__(self, data_page: DataPage, active_model: str):
        super().__init__()
        self.setTitle("Settings")
        self.data_page = data_page
        self.base_combo = QComboBox(self)
        self.base_combo.addItem(f"Fine-tune the active model ({active_model}) — recommended", "")
        self.base_combo.addItem("Start from scratch (random weights)", "scratch")
        self.base_combo.addItem("Start from ImageNet weights (downloaded once; needs the internet)", "imagenet")
        self.epochs_spin = QSpinBox(self)
        self.epochs_spin.setRange(1, 200)
        self.epochs_spin.setValue(10)
        self.size_spin = QSpinBox(self)
        self.size_spin.setRange(32, 224)
        self.size_spin.setSingleStep(32)
        self.size_spin.setValue(128)
        self.augment_combo = QComboBox(self)
        for value, text in AUGMENT_PRESETS:
            self.augment_combo.addItem(text, value)
        self.guard_check = QCheckBox("Guard against forgetting the original lab (replay of the development set "
                                     "where given, else distillation from the active model)", self)
        self.guard_check.setChecked(True)
        self.estimate_label = QLabel(self)
        for widget in (self.base_combo, self.augment_combo):
            widget.currentIndexChanged.connect(self.update_estimate)
        for spin in (self.epochs_spin, self.size_spin):
            spin.valueChanged.connect(self.update_estimate)
        form = QFormLayout(self)
        form.addRow("Start from", self.base_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Image size (new models)", self.size_spin)
        form.addRow("Augmentation", self.augment_combo)
        form.addRow(self.guard_check)
        form.addRow("Time on this machine", self.estimate_label)

    def initializePage(self) -> None:  # noqa: N802 (Qt's name)
        self.update_estimate()

    def fine_tune(self) -> bool:
        return self.base_combo.currentData() == ""

    def update_estimate(self) -> None:
        from engine.training.job import JobSpec, estimate_seconds

        self.size_spin.setEnabled(not self.fine_tune())
        self.guard_check.setEnabled(self.fine_tune())
        survey = self.data_page.survey
        n_lab = len(survey.train) if survey is not None else 0
        replay = 1600 if self.data_page.replay_edit.text().strip() else 0
        seconds = estimate_seconds(JobSpec(epochs=self.epochs_spin.value(), image_size=self.size_spin.value()),
                                   n_lab, replay)
        when = f"about {round(seconds / 60)} min" if seconds >= 90 else f"about {max(5, round(seconds / 5) * 5)} s"
        self.estimate_label.setText(f"{when} ({n_lab} training images"
                                    f"{', development set replayed' if replay else ''})")


__all__ = ["DataPage", "SettingsPage", "run_survey"]
