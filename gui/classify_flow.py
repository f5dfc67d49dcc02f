"""Classifying from the main window: when Classify is refused, registering a sample in the store
on its first classification, putting it in the batch queue (:class:`gui.batch.BatchQueue`) and
starting it, and showing what the batch reports (results as they arrive, a job's end, the
queue's changes) in the samples panel, the Results tab and the image on show.

:class:`ClassifyFlow` is driven by the Classify action, the queue dock's Add, and the batch
queue's ``results``, ``job_finished`` and ``changed`` (connected in :class:`gui.main_window.MainWindow`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import Permission
from engine.core.jobs import JobState
from engine.core.records import ReviewedImage
from engine.store.naming import image_key
from gui import errors as gui_errors
from gui.scrolling import show_panel
from gui.workbench import note_after_job

if TYPE_CHECKING:
    from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabWidget

    from engine.core.records import ImageResult
    from gui.access_flow import AccessFlow
    from gui.batch import BatchQueue
    from gui.batch_job import BatchJob
    from gui.current_image import CurrentImage
    from gui.model_host import ModelHost
    from gui.samples import SamplesPanel
    from gui.shown_results import ShownResults
    from gui.workbench import Sample, Workbench


class ClassifyFlow:
    """Queueing and starting samples, and following the batch queue.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`): the parent of error dialogs, its ``show_message`` and
    ``update_actions``, and its ``settings``, ``model_card`` and ``model_error`` (replaced when the
    settings change); ``access`` says who acts (registration and results are recorded under it)."""

    def __init__(self, window: QMainWindow, *, workbench: Workbench, batch: BatchQueue, model_host: ModelHost,
                 samples_panel: SamplesPanel, results: ShownResults, image: CurrentImage,
                 side_tabs: QTabWidget, queue_dock: QDockWidget, access: AccessFlow):
        self.window = window
        self.access = access
        self.workbench = workbench
        self.batch = batch
        self.model_host = model_host
        self.samples_panel = samples_panel
        self.results = results
        self.image = image
        self.side_tabs = side_tabs
        self.queue_dock = queue_dock

    # ------------------------------------------------------------------ queueing
    def can_classify(self, sample: Sample | None, *, quiet: bool = False) -> bool:
        w = self.window
        if sample is not None and w.model_card is None:
            if not quiet:
                gui_errors.show_error(w, f"No model available to classify with: {w.model_error}\n\n"
                                         "Choose a model in Edit ▸ Settings….")
            return False
        refusal = self.workbench.classify_refusal(sample)
        if refusal and not quiet:
            w.show_message(refusal)
        return not refusal

    def ensure_registered(self, sample: Sample) -> bool:
        """Give the sample its row in the store (first classification); False if impossible."""
        identity = self.access.identity
        try:
            done = self.workbench.register(sample, self.samples_panel.samples,
                                           identity.name if identity is not None else "", actor=self.access.user)
        except AllSightError as exc:
            gui_errors.show_exception(self.window, f"Sample {sample.sample_id} could not be registered", exc)
            return False
        if done.note:
            self.window.show_message(done.note)
        if done.adopted:
            self.results.show_adopted(sample)
        elif done.created:
            self.samples_panel.refresh_sample(sample)
        return True

    def queue_sample(self, sample: Sample | None, *, start: bool = False) -> BatchJob | None:
        """Put a sample in the batch queue (registering it in the store first)."""
        if not self.can_classify(sample):
            return None
        if not self.access.allowed(Permission.CLASSIFY, "classify samples") or not self.ensure_registered(sample):
            return None
        job = self.batch.add(sample, sample.store_id, sample.image_keys(), self.access.user)
        if job.state == JobState.QUEUED and not start:
            sample.status_note = "queued"
        if start:
            self.batch.start()
            if self.batch.paused:
                self.batch.resume()
        self.queue_dock.show()
        self.samples_panel.refresh_sample(sample)
        if sample is self.results.sample:
            self.results.panel.set_job_state(job.state)
        return job

    def queue_current(self) -> BatchJob | None:
        return self.queue_sample(self.samples_panel.current_sample())

    def classify_current(self) -> BatchJob | None:
        """One click: queue the selected sample and start."""
        job = self.queue_sample(self.samples_panel.current_sample(), start=True)
        if job is not None:
            show_panel(self.side_tabs, self.results.panel)
            if self.model_host.loaded() is None:
                name = self.window.settings.active_model or getattr(self.window.model_card, "id", "active model")
                self.window.show_message(f"Loading the model ({name}) — the first "
                                         "classification takes a few seconds longer…", 8000)
            else:
                self.window.show_message(f"Classifying {job.label}…", 4000)
        return job

    # ------------------------------------------------------------------ what the batch reports
    def on_batch_results(self, job: BatchJob, results: list[ImageResult]) -> None:
        sample = job.sample
        positions = self.results.positions_of(sample)
        rows = [ReviewedImage.from_result(r, path=os.path.abspath(r.path),
                                          position=positions.get(image_key(r.path), 0))
                for r in results]
        if sample is self.results.sample:
            self.results.panel.add_results(rows)
            self.image.on_results_added(rows)
        if job.total:
            sample.status_note = f"{job.done}/{job.total} classified"
            self.samples_panel.refresh_sample(sample)

    def on_job_finished(self, job: BatchJob) -> None:
        sample = job.sample
        rp = self.results.panel
        if sample is self.results.sample:
            rp.flush()
        n = job.total or len(job.paths)
        summary = rp.summary if sample is self.results.sample else None
        left = summary.n_flagged_unreviewed if summary is not None else None
        sample.status_note = note_after_job(job.state, job.done, n, left)
        if job.state == JobState.DONE:
            self.window.show_message(f"Sample {job.label}: {job.message}.", 8000)
        elif job.state == JobState.CANCELLED:
            self.window.show_message(f"Sample {job.label}: stopped after {job.done}/{n}; Classify resumes it.", 8000)
        self.samples_panel.refresh_sample(sample)

    def on_queue_changed(self) -> None:
        self.results.show_job_state()
        current = self.samples_panel.current_sample()
        if current is not None:
            self.samples_panel.refresh_sample(current)
        self.window.update_actions()
