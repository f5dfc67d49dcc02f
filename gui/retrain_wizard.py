"""Tools ▸ Retrain model…: a lab teaches the model its own stain, checks it, and promotes it.

Steps (one module each): *Data* and *Settings* (:mod:`gui.retrain_data_page`), *Training*
(:mod:`gui.retrain_training_page`: a child process, never torch in this one), *Compare* and
*Promote* (:mod:`gui.retrain_compare_page`). Each run has its own folder under
``<user data>/training/`` (:mod:`engine.training.job`); a run interrupted by a crash or a closed
app is offered for resuming when the wizard opens again. Promotion installs the candidate in the
model library and activates it with the audit entry (who, why, both sha256, the figures);
nothing the lab had — active model, results, reviews — changes before that.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget, QWizard

from engine.core.errors import AllSightError
from engine.training import job
from gui import dialogs
from gui import errors as gui_errors
from gui.retrain_compare_page import ComparePage, PromotePage
from gui.retrain_data_page import DataPage, SettingsPage
from gui.retrain_training_page import TrainingPage

if TYPE_CHECKING:
    from engine.models.library import ModelLibrary
    from engine.store.results import ResultStore
    from gui.workers import WorkerPool

DATA, SETTINGS, TRAINING, COMPARE, PROMOTE = range(5)


def interrupted_runs() -> list[Path]:
    root = job.runs_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and job.interrupted(p))


class RetrainWizard(QWizard):
    def __init__(self, library: ModelLibrary, store: ResultStore | None, workers: WorkerPool, actor: str,
                 parent: QWidget | None = None, *, promote_refusal: str = "", resume: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("ALLSight — retrain model")
        self.resize(820, 600)
        self.library = library
        self.store = store
        self.actor = actor
        self.promoted = None
        try:
            active = library.active()
            self.active_card_path = str(active.card.path)
            active_name = active.ref
        except AllSightError:
            self.active_card_path, active_name = "", "none usable"
        self.data_page = DataPage(workers, str(store.path) if store is not None else "")
        self.settings_page = SettingsPage(self.data_page, active_name)
        self.training_page = TrainingPage()
        self.compare_page = ComparePage()
        self.promote_page = PromotePage(self.compare_page, promote_refusal)
        for page_id, page in ((DATA, self.data_page), (SETTINGS, self.settings_page), (TRAINING, self.training_page),
                              (COMPARE, self.compare_page), (PROMOTE, self.promote_page)):
            self.setPage(page_id, page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Promote")
        self.setOption(QWizard.WizardOption.HaveCustomButton1, True)
        self.setButtonText(QWizard.WizardButton.CustomButton1, "Discard")
        self.customButtonClicked.connect(lambda _which: self.discard())
        self.currentIdChanged.connect(self._entered)
        self.resume_dir = resume
        if resume is not None:
            self.setStartId(TRAINING)

    # ------------------------------------------------------------------ steps
    def _entered(self, page_id: int) -> None:
        self.button(QWizard.WizardButton.CustomButton1).setVisible(page_id in (COMPARE, PROMOTE))
        if page_id == TRAINING and self.training_page.run_dir is None:
            run_dir = self.resume_dir or self._new_run()
            if run_dir is not None:
                self.compare_page.run_dir = run_dir
                self.training_page.start(run_dir)

    def _new_run(self) -> Path | None:
        """Write the job's spec into a new run folder."""
        s = self.settings_page
        init = self.active_card_path if s.fine_tune() else s.base_combo.currentData()
        if not init:
            gui_errors.show_error(self, "There is no usable active model to fine-tune: activate one in "
                                        "Tools ▸ Models…, or start from scratch.")
            return None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        spec = job.JobSpec(folders=tuple(self.data_page.folders()), store=self.data_page.store_used(), init=init,
                           image_size=s.size_spin.value(), replay_dir=self.data_page.replay_edit.text().strip(),
                           epochs=s.epochs_spin.value(), augment=s.augment_combo.currentData(),
                           distill=None if s.guard_check.isChecked() else 0.0,
                           skip_unreadable=self.data_page.skip_check.isChecked(), model_id="lab-model",
                           version=stamp, started_by=self.actor)
        run_dir = job.runs_dir() / stamp
        try:
            spec.write(run_dir)
        except OSError as exc:
            gui_errors.show_error(self, f"The training folder {run_dir} cannot be written: {exc}")
            return None
        return run_dir

    # ------------------------------------------------------------------ ending
    def accept(self) -> None:
        """Promote: install the candidate and activate it, audited; a refusal keeps the wizard open."""
        run_dir = self.training_page.run_dir
        state = job.read_state(run_dir) if run_dir else {}
        if not state.get("model_path"):
            return
        reason = self.promote_page.reason_edit.text().strip()
        figures = {key: {who: {k: part[who].get(k) for k in ("accuracy", "recall", "ece", "flagged_fraction",
                                                             "background_swap")}
                         for who in ("current", "candidate")} for key, part in self.compare_page.report.items()
                   if key != "models"}

        def record(activation) -> None:
            if self.store is not None:
                self.store.record_event("model_changed", actor=self.actor, figures=figures,
                                        origin=f"retraining wizard run {run_dir.name}", **activation.audit_details())

        try:
            model = self.library.install(state["model_path"], by=self.actor, origin=f"retraining wizard run "
                                                                                   f"{run_dir.name}")
            self.promoted = self.library.activate(model.ref, by=self.actor, reason=reason, record=record)
        except AllSightError as exc:
            gui_errors.show_exception(self, "The new model was not promoted", exc)
            return
        super().accept()

    def discard(self) -> bool:
        run_dir = self.training_page.run_dir
        if run_dir is None or not dialogs.confirm(self, "Discard the new model", "Delete the new model and its "
                                                  "training run? The current model stays active.", "Discard", "Keep"):
            return False
        self.training_page.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        super().reject()
        return True

    def reject(self) -> None:
        """Closing keeps a running training resumable (its process is stopped; the next opening
        offers to resume it)."""
        self.training_page.stop()
        super().reject()

    def done(self, result: int) -> None:
        self.training_page.stop()
        super().done(result)


__all__ = ["RetrainWizard", "interrupted_runs"]
