"""The main window: samples on the left, the image in the middle, results and review (and the
preprocessing preview) on the right, the batch queue along the bottom, status at the foot.

Layout (attribute names in brackets)::

    [menuBar: file_menu, edit_menu, sample_menu, view_menu, help_menu]   [toolbar]
    [splitter: samples_panel | center_tabs ("Image" = viewer_panel) |
               side_tabs ("Results" = results_panel, "Preprocessing" = preview_panel)]
    [queue_dock: queue_panel]
    [statusBar: message · error_button · busy_label · device_label · model_label · ruo_label]

The widgets, actions, menus and status bar are built by :mod:`gui.window_layout`; the workflow
rules the window applies (registering, history, IDs, review, sign-off) are :mod:`gui.workbench`,
which is Qt-free. This module wires the two together and asks the person (names, reasons, files).

Work off the GUI thread:

* ``self.workers`` (:class:`gui.workers.WorkerPool`): image decoding, thumbnails, the preview,
  reading a sample's results from the store, Grad-CAM, exports.
* ``self.batch`` (:class:`gui.batch.BatchQueue`): one thread classifying the queued samples
  in the classifier process of ``self.model_host`` (started there, or by the warm-up, on first
  use) and committing each result to ``self.store`` as it arrives.

``self.store`` (:class:`engine.store.results.ResultStore`, at :func:`engine.store.results.default_db_path`) is the
persistent history: samples are registered in it when first classified; their predictions,
reviews, sign-offs and ID edits are written there (each write audited by the store), and the
samples panel lists the stored samples at start-up. Short writes (a review, a sign-off, an ID
edit) run in the GUI thread: each is one small SQLite transaction.

Every error a person must see goes through :func:`gui.errors.show_error` (dialog + log + the
status bar's error indicator).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QWidget,
)

from engine import __version__
from engine.core.errors import AllSightError, ImageLoadError
from engine.core.jobs import JobState
from engine.core.records import ImageResult, ReviewedImage
from engine.store.naming import image_key
from gui import errors as gui_errors
from gui import window_layout as layout
from gui.batch import BatchJob, BatchQueue
from gui.model_host import ModelHost, ModelSpec
from gui.settings import Settings, load_settings, save_settings
from gui.viewer import crop_region
from gui.workbench import (
    UNREADABLE,
    HistoryEntry,
    Sample,
    Workbench,
    export_stem,
    note_after_job,
    note_from_results,
    stop_question,
)
from gui.workers import PRIORITY_INTERACTIVE, TaskError, WorkerPool

if TYPE_CHECKING:
    from engine.models.checkpoint import ModelCard
    from engine.store.results import ResultStore
    from engine.store.results import Sample as StoredSample

log = logging.getLogger("allsight.gui.main_window")

DEFAULT_SIZE = (1440, 920)


def fitting_size(wanted: tuple[int, int], available: tuple[int, int]) -> tuple[int, int]:
    """The window's first size: ``wanted``, but never larger than 95 % of the screen's free area
    (at 150 % display scaling a 1080p screen has 1280 × ~700 logical pixels)."""
    return (min(wanted[0], int(available[0] * 0.95)), min(wanted[1], int(available[1] * 0.95)))


def window_title() -> str:
    return f"ALLSight {__version__} — research use only"


def _load_for_view(path: Path) -> np.ndarray | ImageLoadError:
    """Worker: the full image, or the reason it cannot be read (an expected outcome)."""
    from engine.io.images import load_image

    try:
        return load_image(path)
    except ImageLoadError as exc:
        return exc


def _norm(path: str | Path) -> str:
    return image_key(path)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None, *,
                 store: ResultStore | None = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else load_settings()
        self.setWindowTitle(window_title())
        self.resize(*fitting_size(DEFAULT_SIZE, self.screen().availableGeometry().size().toTuple()))
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self._closed = False

        self.workers = WorkerPool(self)
        self.workers.default_error_parent = self

        # The result history (a small SQLite file: opening it takes milliseconds).
        self.store = store
        self.store_error: str | None = None
        self._owns_store = store is None
        if self.store is None:
            self._open_store()
        self.workbench = Workbench(self.store, self.store_error)

        self.model_card = None
        self.model_error: str | None = None
        self.model_host = ModelHost(self._model_spec())
        self.batch = BatchQueue(self.store, self.model_host, self)

        layout.build_panels(self)
        self.samples_panel.lock_reason = self._lock_reason
        self.samples_panel.confirm_split = self._confirm_split
        self.queue_panel.can_add = lambda: self.samples_panel.current_sample() is not None
        self.queue_panel.confirm_stop = lambda: self.confirm_stop(quitting=False)

        # Current image / results state
        self.current_sample: Sample | None = None
        self.current_row = -1
        self.current_path: Path | None = None
        self.current_rgb: np.ndarray | None = None
        self._image_request = 0
        self.results_sample: Sample | None = None
        self._results_request = 0
        self._results_loading = False
        self._positions: dict[int, dict[str, int]] = {}
        self.history_loaded = False

        layout.build_actions(self)
        layout.build_menus(self)
        layout.build_status_bar(self)
        self._error_count = 0
        if self.store_error:
            self.show_message(f"Result history unavailable: {self.store_error}", 0)
        self.load_model_info()

        sp = self.samples_panel
        sp.set_open_action(self.act_open)
        sp.set_classify_action(self.act_classify)
        sp.current_image_changed.connect(self._on_current_image_changed)
        sp.current_sample_changed.connect(self._on_current_sample_changed)
        sp.sample_updated.connect(self._on_sample_updated)
        sp.sample_edited.connect(self._on_sample_edited)
        sp.status_message.connect(self.show_message)
        sp.operator_entered.connect(self._on_operator_entered)
        self.viewer_panel.navigate.connect(self.step_image)
        self.viewer_panel.heatmap_requested.connect(self._request_heatmap)
        self.preview_panel.result_displayed.connect(self._on_preview_result)
        self.workers.busy_changed.connect(self._on_busy_changed)

        rp = self.results_panel
        rp.current_row_changed.connect(self._on_result_row_selected)
        rp.review_requested.connect(self.review)
        rp.withdraw_requested.connect(lambda path: self.review(path, None))
        rp.sign_off_requested.connect(self.sign_off)
        rp.reopen_requested.connect(self.reopen)
        rp.export_requested.connect(self.export_current)
        rp.status_message.connect(self.show_message)

        self.batch.results.connect(self._on_batch_results)
        self.batch.job_finished.connect(self._on_job_finished)
        self.batch.model_ready.connect(self._on_model_ready)
        self.batch.failed.connect(lambda message, details: gui_errors.show_error(self, message, details or None))
        self.batch.changed.connect(self._on_queue_changed)
        self.queue_panel.add_requested.connect(self.queue_current)
        self.queue_panel.job_activated.connect(lambda job: self.samples_panel.select_sample(job.sample))
        gui_errors.add_listener(self._on_error_shown)

        self._update_actions()
        if self.store is not None:
            self.workers.submit(self.workbench.read_history, self._model_sha(), priority=PRIORITY_INTERACTIVE,
                                name="read history", on_result=self._on_history)
        else:
            self.history_loaded = True

    # ------------------------------------------------------------------ construction
    def _open_store(self) -> None:
        from engine.store.results import ResultStore, StoreError, default_db_path

        try:
            self.store = ResultStore.open(default_db_path())
        except StoreError as exc:
            self.store, self.store_error = None, str(exc)
            log.error("result history unavailable: %s", exc)

    def add_center_tab(self, widget: QWidget, title: str) -> int:
        return self.center_tabs.addTab(widget, title)

    def show_message(self, text: str, msecs: int = 8000) -> None:
        self.statusBar().showMessage(text, msecs)

    # ------------------------------------------------------------------ model
    def _model_spec(self) -> ModelSpec:
        s = self.settings
        return ModelSpec(s.active_model, s.device, s.review_threshold_override)

    def _model_sha(self) -> str | None:
        return getattr(self.model_card, "weights_sha256", None) or None

    def load_model_info(self) -> None:
        """Read the active model's card (cheap: JSON only, no torch). No model installed is a
        normal state: the status bar says so and the preview uses the research defaults."""
        from engine.models.checkpoint import resolve_model_card

        self.model_host.configure(self._model_spec())
        self._set_device_label(None)
        model = self.settings.active_model
        try:
            card = resolve_model_card(model)
        except (AllSightError, OSError) as exc:
            self.model_card, self.model_error = None, str(exc)
            log.warning("active model %r unavailable: %s", model, exc)
            self.model_label.setText("⚠ No model installed")
            self.model_label.setStyleSheet("color: #c62828; padding: 0 6px;")
            self.model_label.setToolTip(
                f"The active model “{model}” cannot be used:\n{exc}\n\n"
                "Classification needs an installed model (Edit ▸ Settings… to choose one); image viewing "
                "and the preview work without one.")
            self.preview_panel.set_model_config(
                None, None, f"No model installed (“{model}”): the preview starts from the default "
                            "parameters of the original research.")
            self._update_actions()
            return
        self.model_card, self.model_error = card, None
        threshold = self.settings.review_threshold_override
        self.model_label.setText(f"Model: {card.id} {card.version}")
        self.model_label.setStyleSheet("padding: 0 6px;")
        self.model_label.setToolTip(
            f"{card.path}\nArchitecture: {card.architecture}, input {card.image_size} px\n"
            f"Review threshold: {card.review_threshold:.3f}"
            + (f" — overridden in the settings: {threshold:.3f}" if threshold is not None else ""))
        self.preview_panel.set_model_config(card.preprocess, f"{card.id} {card.version}")
        self._update_actions()

    def _set_device_label(self, text: str | None) -> None:
        if text is None:
            self.device_label.setText(f"Device: {self.settings.device}")
            self.device_label.setToolTip("The model is loaded when a sample is first classified")
        else:
            self.device_label.setText(f"Device: {text}")
            self.device_label.setToolTip("Where the model runs")

    def _on_model_ready(self, card: ModelCard, device: str) -> None:
        self._set_device_label(device)

    # ------------------------------------------------------------------ samples
    def open_folders_dialog(self) -> None:
        from gui import dialogs

        start = self.settings.last_open_dir if Path(self.settings.last_open_dir or "").is_dir() else ""
        folders = dialogs.choose_folders(self, start)
        if folders:
            self.open_paths(folders)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open folders (one sample each) and/or image files; remembers where they came from."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        first = paths[0]
        remembered = str(first.parent if first.is_dir() or first.is_file() else first)
        if remembered != self.settings.last_open_dir:
            self.update_settings(last_open_dir=remembered)
        self.samples_panel.open_paths(paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
        else:
            event.ignore()

    @staticmethod
    def _dropped_paths(event) -> list[Path]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [Path(url.toLocalFile()) for url in mime.urls()
                if url.isLocalFile() and Path(url.toLocalFile()).exists()]

    def _on_operator_entered(self, name: str) -> None:
        if name and name != self.settings.operator_name:
            self.samples_panel.default_operator = name
            self.update_settings(operator_name=name)

    def _confirm_split(self, folder: Path, subfolders: list[Path]) -> bool:
        from gui import dialogs

        names = ", ".join(p.name for p in subfolders[:4]) + (", …" if len(subfolders) > 4 else "")
        return dialogs.confirm(
            self, "Open as separate samples?",
            f"{folder.name} holds no image itself but {len(subfolders)} folders of images ({names}).\n\n"
            "Each folder is usually one patient's sample. Open each as its own sample, or all of them "
            "as one sample?", f"Open {len(subfolders)} samples", "Open as one sample")

    def _lock_reason(self, sample: Sample) -> str:
        if sample.signed_off:
            return f"✔ Signed off by {sample.signed_off_by}: reopen the sample to edit it."
        if self.batch.is_active(sample):
            return "Being classified: the IDs can be edited when it has finished (or is cancelled)."
        return ""

    # ------------------------------------------------------------------ history (the store)
    def _on_history(self, entries: list[HistoryEntry]) -> None:
        panel = self.samples_panel
        merge = self.workbench.merge_history(entries, panel.samples)
        for sample, stored in merge.adopted:  # opened in this session before the history arrived
            self._adopt(sample, stored)
        panel.add_history(list(merge.added))
        self.history_loaded = True
        if merge.added:
            log.info("result history: %d sample(s) from %s", len(merge.added), self.store.path)

    def _adopt(self, sample: Sample, stored: StoredSample) -> None:
        self.workbench.adopt(sample, stored)
        self._show_adopted(sample)

    def _show_adopted(self, sample: Sample) -> None:
        """The sample took a stored sample's IDs and state: show them."""
        self.samples_panel.refresh_sample(sample)
        if sample is self.results_sample:
            self._show_results_of(sample)

    def _ensure_registered(self, sample: Sample) -> bool:
        """Give the sample its row in the store (first classification); False if impossible."""
        try:
            done = self.workbench.register(sample, self.samples_panel.samples, self.settings.operator_name)
        except AllSightError as exc:
            gui_errors.show_error(self, str(exc), gui_errors.format_details(exc))
            return False
        if done.note:
            self.show_message(done.note)
        if done.adopted:
            self._show_adopted(sample)
        elif done.created:
            self.samples_panel.refresh_sample(sample)
        return True

    def _on_sample_edited(self, sample: Sample) -> None:
        """Save the sample's IDs and operator to the store (audited there)."""
        from engine.store.results import StoreError

        actor = self.settings.operator_name or sample.operator
        before = sample.store_id
        try:
            saved = self.workbench.save_ids(sample, actor)
        except StoreError as exc:
            gui_errors.show_error(self, f"The change to sample {before} could not be saved: {exc}",
                                  gui_errors.format_details(exc))
            saved = False
        if saved:
            self.show_message(f"Saved sample {sample.store_id}.", 4000)
        self.samples_panel.refresh_sample(sample)
        if sample is self.results_sample:
            self.results_panel.set_title(self._results_title(sample))

    # ------------------------------------------------------------------ classification
    def _can_classify(self, sample: Sample | None, *, quiet: bool = False) -> bool:
        if sample is not None and self.model_card is None:
            if not quiet:
                gui_errors.show_error(self, f"No model available to classify with: {self.model_error}\n\n"
                                            "Choose a model in Edit ▸ Settings….")
            return False
        refusal = self.workbench.classify_refusal(sample)
        if refusal and not quiet:
            self.show_message(refusal)
        return not refusal

    def queue_sample(self, sample: Sample | None, *, start: bool = False) -> BatchJob | None:
        """Put a sample in the batch queue (registering it in the store first)."""
        if not self._can_classify(sample) or not self._ensure_registered(sample):
            return None
        actor = self.settings.operator_name or sample.operator
        job = self.batch.add(sample, sample.store_id, sample.image_keys(), actor)
        if job.state == JobState.QUEUED and not start:
            sample.status_note = "queued"
        if start:
            self.batch.start()
            if self.batch.paused:
                self.batch.resume()
        self.queue_dock.show()
        self.samples_panel.refresh_sample(sample)
        if sample is self.results_sample:
            self.results_panel.set_job_state(job.state)
        return job

    def _job_state_of(self, sample: Sample) -> JobState | None:
        job = self.batch.job_for(sample)
        return job.state if job is not None else None

    def queue_current(self) -> BatchJob | None:
        return self.queue_sample(self.samples_panel.current_sample())

    def classify_current(self) -> BatchJob | None:
        """One click: queue the selected sample and start."""
        job = self.queue_sample(self.samples_panel.current_sample(), start=True)
        if job is not None:
            self.side_tabs.setCurrentWidget(self.results_panel)
            if self.model_host.loaded() is None:
                self.show_message(f"Loading the model ({self.settings.active_model}) — the first classification "
                                  "takes a few seconds longer…", 8000)
            else:
                self.show_message(f"Classifying {job.label}…", 4000)
        return job

    def _positions_of(self, sample: Sample) -> dict[str, int]:
        positions = self._positions.get(id(sample))
        if positions is None or len(positions) != len(sample.images):
            positions = {_norm(im.path): i for i, im in enumerate(sample.images)}
            self._positions[id(sample)] = positions
        return positions

    def _on_batch_results(self, job: BatchJob, results: list[ImageResult]) -> None:
        sample = job.sample
        positions = self._positions_of(sample)
        rows = [ReviewedImage.from_result(r, path=os.path.abspath(r.path), position=positions.get(_norm(r.path), 0))
                for r in results]
        if sample is self.results_sample:
            self.results_panel.add_results(rows)
            if self.current_path is not None and self.current_rgb is not None:
                current = _norm(self.current_path)
                if any(r.path == current and r.ok for r in rows):
                    self.viewer_panel.set_heatmap_available(True)
                    self.results_panel.select_path(current)
        if job.total:
            sample.status_note = f"{job.done}/{job.total} classified"
            self.samples_panel.refresh_sample(sample)

    def _on_job_finished(self, job: BatchJob) -> None:
        sample = job.sample
        if sample is self.results_sample:
            self.results_panel.flush()
        n = job.total or len(job.paths)
        summary = self.results_panel.summary if sample is self.results_sample else None
        left = summary.n_flagged_unreviewed if summary is not None else None
        sample.status_note = note_after_job(job.state, job.done, n, left)
        if job.state == JobState.DONE:
            self.show_message(f"Sample {job.label}: {job.message}.", 8000)
        elif job.state == JobState.CANCELLED:
            self.show_message(f"Sample {job.label}: stopped after {job.done}/{n}; Classify resumes it.", 8000)
        self.samples_panel.refresh_sample(sample)

    def _on_queue_changed(self) -> None:
        sample = self.results_sample
        if sample is not None:
            self.results_panel.set_job_state(self._job_state_of(sample))
        current = self.samples_panel.current_sample()
        if current is not None:
            self.samples_panel.refresh_sample(current)
        self._update_actions()

    # ------------------------------------------------------------------ results
    def _results_title(self, sample: Sample) -> str:
        parts = [f"Sample {sample.sample_id}"]
        if sample.patient_id:
            parts.append(f"patient {sample.patient_id}")
        parts.append(f"{len(sample.images)} images")
        return " · ".join(parts)

    def _on_current_sample_changed(self, sample: Sample | None) -> None:
        self._show_results_of(sample)
        self._update_actions()

    def _show_results_of(self, sample: Sample | None) -> None:
        self.results_sample = sample
        self._results_request += 1
        rp = self.results_panel
        if sample is None:
            self._results_loading = False
            rp.clear()
            return
        rp.set_sample(self._results_title(sample), [], len(sample.images))
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        rp.set_job_state(self._job_state_of(sample))
        if sample.store_id is None or self.store is None:
            self._results_loading = False
            return
        self._results_loading = True
        request = self._results_request
        self.workers.submit(self.workbench.read_records, sample, priority=PRIORITY_INTERACTIVE,
                            name="read results",
                            on_result=lambda records: self._on_records(request, sample, records),
                            on_error=lambda err: self._on_records_error(request, err))

    def _on_records(self, request: int, sample: Sample, records: list[ReviewedImage]) -> None:
        if request != self._results_request:
            return
        self._results_loading = False
        rows = list(records)
        known = {r.path for r in rows}
        newer = [r for r in self.results_panel.model.rows if r.path not in known]  # arrived meanwhile
        rp = self.results_panel
        rp.set_sample(self._results_title(sample), rows, len(sample.images))
        if newer:
            rp.add_results(newer)
        self.workbench.refresh_sign_state(sample)
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        rp.set_job_state(self._job_state_of(sample))
        if rows:
            self.side_tabs.setCurrentWidget(rp)
            self._update_note_from_summary(sample)
        if self.current_path is not None:
            current = _norm(self.current_path)
            rp.select_path(current)
            if self.current_rgb is not None:
                row = rp.model.row_data(rp.model.row_of(current))
                self.viewer_panel.set_heatmap_available(row is not None and row.ok)

    def _on_records_error(self, request: int, err: TaskError) -> None:
        if request == self._results_request:
            self._results_loading = False
        gui_errors.show_error(self, f"The stored results could not be read: {gui_errors.error_message(err.exc)}",
                              err.details)

    def _update_note_from_summary(self, sample: Sample) -> None:
        summary = self.results_panel.summary
        if summary is None or self.batch.is_active(sample):
            return
        sample.status_note = note_from_results(len(sample.images), self.results_panel.n_pending,
                                               summary.n_flagged_unreviewed)
        self.samples_panel.refresh_sample(sample)

    def _on_result_row_selected(self, row: ReviewedImage | None) -> None:
        sample = self.results_sample
        if row is None or sample is None or sample is not self.samples_panel.current_sample():
            return
        index = self._positions_of(sample).get(row.path, -1)
        if index >= 0 and index != self.samples_panel.current_row():
            self.samples_panel.set_current_row(index)

    # ------------------------------------------------------------------ review and sign-off
    def reviewer_name(self) -> str | None:
        """Who reviews: the operator name from the settings (asked once if there is none)."""
        name = self.settings.operator_name.strip()
        if name:
            return name
        from gui import dialogs

        name = (dialogs.ask_text(self, "Your name", "Reviews and sign-offs are recorded under your name:") or "")
        if not name:
            self.show_message("A name is needed to record reviews (Edit ▸ Settings… ▸ Operator name).")
            return None
        self.update_settings(operator_name=name)
        self.samples_panel.default_operator = name
        return name

    def review(self, path: str, final_class: str | None) -> bool:
        """Record the reviewer's class for one image of the results sample (None: withdraw the
        image's review)."""
        from engine.store.results import SignOffError

        sample = self.results_sample
        if sample is None or sample.store_id is None or self.store is None:
            return False
        reviewer = self.reviewer_name()
        if reviewer is None:
            return False
        try:
            when = self.workbench.review(sample, path, final_class, reviewer)
        except SignOffError as exc:
            self.show_message(str(exc))
            return False
        except AllSightError as exc:
            gui_errors.show_error(self, f"The review could not be saved: {exc}", gui_errors.format_details(exc))
            return False
        if final_class is None:
            self.results_panel.set_review(path, None, None)
        else:
            self.results_panel.set_review(path, final_class, reviewer, when)
        self._update_note_from_summary(sample)
        self.results_panel.after_review()
        return True

    def sign_off(self) -> bool:
        from engine.store.results import SignOffError

        sample = self.results_sample
        rp = self.results_panel
        if sample is None or sample.store_id is None or self.store is None:
            self.show_message("Classify the sample before signing it off.")
            return False
        rp.flush()
        blockers = rp.sign_off_blockers()
        if blockers:  # said before asking for a name
            self.show_message(f"Cannot sign off yet: {blockers}")
            return False
        reviewer = self.reviewer_name()
        if reviewer is None:
            return False
        from gui import dialogs

        # What is signed is said in words, and the words are what the record keeps.
        statement = self.workbench.sign_off_statement(sample)
        if not dialogs.confirm(self, f"Sign off sample {sample.sample_id}",
                               f"{statement}\n\nSigned as {reviewer}. The statement is kept with the sample and in "
                               "its audit trail; the sample cannot be changed until it is reopened.",
                               "Sign off", "Cancel"):
            self.show_message("Not signed off.")
            return False
        try:
            self.workbench.sign_off(sample, reviewer, statement,
                                    require_independent=self.settings.require_independent_reviewer)
        except SignOffError as exc:
            self.show_message(str(exc), 12000)
            rp.sign_state_label.setText(f"<span style='color:#e65100'>{exc}</span>")
            return False
        except AllSightError as exc:
            gui_errors.show_error(self, f"The sign-off could not be saved: {exc}", gui_errors.format_details(exc))
            return False
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        self.samples_panel.refresh_sample(sample)
        self._update_actions()
        self.show_message(f"Sample {sample.sample_id} signed off by {reviewer}.")
        return True

    def reopen(self) -> bool:
        from gui import dialogs

        sample = self.results_sample
        if sample is None or not sample.signed_off or self.store is None or sample.store_id is None:
            return False
        reason = dialogs.ask_text(self, "Reopen sample",
                                  f"Why reopen sample {sample.sample_id}? (kept in the audit log)")
        if not reason:
            self.show_message("Not reopened: a reason is required.")
            return False
        actor = self.reviewer_name()
        if actor is None:
            return False
        try:
            self.workbench.reopen(sample, actor, reason)
        except AllSightError as exc:
            gui_errors.show_error(self, f"The sample could not be reopened: {exc}", gui_errors.format_details(exc))
            return False
        self.results_panel.set_sign_state(None, None)
        self.samples_panel.refresh_sample(sample)
        self._update_note_from_summary(sample)
        self._update_actions()
        self.show_message(f"Sample {sample.sample_id} reopened.")
        return True

    # ------------------------------------------------------------------ export
    def export_current(self) -> bool:
        from gui import dialogs, export

        sample = self.results_sample
        if sample is None or sample.store_id is None or self.store is None or not self.results_panel.model.rows:
            self.show_message("Classify the sample before exporting its report.")
            return False
        start = self.settings.last_export_dir if Path(self.settings.last_export_dir or "").is_dir() else ""
        path = dialogs.choose_export_file(self, start, export_stem(sample))
        if not path:
            return False
        folder = str(Path(path).parent)
        if folder != self.settings.last_export_dir:
            self.update_settings(last_export_dir=folder)
        self.show_message(f"Exporting {Path(path).name}…", 0)
        self.workers.submit(export.export_sample, self.store, sample.store_id, path,
                            lab_name=self.settings.lab_name, model_card=self.model_card, name="export",
                            on_result=lambda p: self.show_message(f"Report saved: {p}", 12000),
                            on_error=lambda err: self._export_failed(path, err))
        return True

    def _export_failed(self, path: str, err: TaskError) -> None:
        self.show_message("Export failed.", 8000)
        gui_errors.show_error(self, f"The report could not be saved to {path}: "
                                    f"{gui_errors.error_message(err.exc)}", err.details)

    # ------------------------------------------------------------------ current image
    def step_image(self, delta: int) -> None:
        self.samples_panel.step_image(delta)

    def _on_current_image_changed(self, sample: Sample | None, row: int) -> None:
        self.current_sample, self.current_row = sample, row
        self._image_request += 1
        self.current_rgb = None
        self.viewer_panel.set_heatmap_available(False)
        if sample is None or row < 0:
            self.current_path = None
            self.viewer.set_image(None, placeholder="Open a sample folder (File ▸ Open folder…) "
                                                    "or drop folders here.")
            self.viewer_panel.set_title("")
            self.preview_panel.set_image(None)
            return
        image = sample.images[row]
        self.current_path = image.path
        self.viewer_panel.set_title(f"{row + 1}/{len(sample.images)}   {image.name}")
        if sample is self.results_sample:
            self.results_panel.select_path(_norm(image.path))
        if image.state == UNREADABLE:
            self._show_unreadable(image.path, image.error or "")
            return
        request = self._image_request
        self.workers.submit(_load_for_view, image.path, priority=PRIORITY_INTERACTIVE, name="load image",
                            on_result=lambda result: self._on_image_loaded(request, sample, row, result))

    def _on_image_loaded(self, request: int, sample: Sample, row: int, result) -> None:
        if request != self._image_request:
            return  # the user has moved on
        if isinstance(result, ImageLoadError):
            model = self.samples_panel.model_for(sample)
            if sample.images[row].state != UNREADABLE:
                model.set_unreadable(row, result.reason)
            self._show_unreadable(result.path, result.reason)
            return
        self.current_rgb = result
        self.viewer.set_image(result)
        self.preview_panel.set_image(result, sample.images[row].name)
        self.viewer_panel.set_heatmap_available(self._current_result_ok())

    def _current_result_ok(self) -> bool:
        if self.current_path is None or self.current_sample is not self.results_sample or self.model_card is None:
            return False
        model = self.results_panel.model
        row = model.row_data(model.row_of(_norm(self.current_path)))
        return row is not None and row.ok

    def _show_unreadable(self, path: Path, reason: str) -> None:
        self.viewer.set_image(None, placeholder=f"{path.name}\n\nunreadable: {reason}")
        self.preview_panel.set_image(None)

    def _on_sample_updated(self, sample: Sample) -> None:
        # A thumbnail decode may have found the image on show unreadable first.
        if (sample is self.current_sample and 0 <= self.current_row < len(sample.images)
                and sample.images[self.current_row].state == UNREADABLE and self.current_rgb is None):
            image = sample.images[self.current_row]
            self._show_unreadable(image.path, image.error or "")

    # ------------------------------------------------------------------ heat map
    def _request_heatmap(self) -> None:
        if self.current_path is None or self.current_rgb is None or not self._current_result_ok():
            return
        request = self._image_request
        self.show_message("Computing the heat map…", 0)
        self.workers.submit(self.model_host.heatmap, str(self.current_path), priority=PRIORITY_INTERACTIVE,
                            name="heat map", on_result=lambda res: self._on_heatmap(request, res),
                            on_error=self._on_heatmap_error)

    def _on_heatmap(self, request: int, result: tuple) -> None:
        self.statusBar().clearMessage()
        if request != self._image_request or self.current_rgb is None:
            return
        _rgb, _heat, overlay = result
        h, w = self.current_rgb.shape[:2]
        crop = self.model_card.preprocess.crop if self.model_card is not None else "center"
        self.viewer_panel.show_heatmap(overlay, crop_region(w, h, crop))

    def _on_heatmap_error(self, err: TaskError) -> None:
        self.statusBar().clearMessage()
        self.viewer_panel.act_heatmap.setChecked(False)
        gui_errors.show_error(self, f"The heat map could not be computed: {gui_errors.error_message(err.exc)}",
                              err.details)

    # ------------------------------------------------------------------ mask overlay
    def _on_preview_result(self, result) -> None:
        """The viewer's colour-mask overlay is the preview's mask (the same computation the
        model's input comes from), stretched over the part of the image the model sees."""
        if self.current_rgb is None or result.stages is None:
            return
        h, w = self.current_rgb.shape[:2]
        self.viewer.set_mask(result.stages.mask, crop_region(w, h, result.config.crop))
        self.viewer.set_mask_visible(self.viewer_panel.act_mask.isChecked())

    # ------------------------------------------------------------------ status, settings
    def _on_busy_changed(self, pending: int) -> None:
        self.busy_label.setText(f"Working… ({pending})" if pending else "")

    def _on_error_shown(self, message: str, _details: str) -> None:
        self._error_count += 1
        self.error_button.setText(f"⚠ {self._error_count} error{'s' if self._error_count > 1 else ''}")
        self.error_button.setToolTip(f"Latest: {message}\nClick for the details (also in the log file).")
        self.error_button.show()
        self.show_message(f"Error: {message}", 15000)

    def _update_actions(self) -> None:
        sample = self.samples_panel.current_sample() if hasattr(self, "samples_panel") else None
        if not hasattr(self, "act_classify"):
            return
        ok = self._can_classify(sample, quiet=True) and not (sample is not None and self.batch.is_active(sample))
        self.act_classify.setEnabled(ok)
        if sample is not None and sample.signed_off:
            self.act_classify.setToolTip("Signed off: reopen the sample to classify it again")
        elif self.model_card is None:
            self.act_classify.setToolTip(f"No model available: {self.model_error}")
        else:
            self.act_classify.setToolTip("Classify the selected sample (Ctrl+R)")
        rs = self.results_sample
        self.act_sign_off.setEnabled(rs is not None and not rs.signed_off)
        self.act_reopen.setEnabled(rs is not None and rs.signed_off)
        self.act_export.setEnabled(rs is not None and rs.store_id is not None)
        self.queue_panel._update_buttons()

    def update_settings(self, **changes) -> None:
        self.settings = self.settings.replace(**changes)
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("settings could not be saved: %s", exc)
            self.show_message(f"Settings could not be saved: {exc}", 10000)

    def open_settings(self) -> bool:

        from gui import settings_dialog

        edited = settings_dialog.edit_settings(self, self.settings)
        if edited is None:
            return False
        self.apply_settings(edited)
        return True

    def apply_settings(self, new: Settings) -> None:
        """Save edited settings and apply what changed (model, device, threshold, names)."""
        old = self.settings
        self.update_settings(active_model=new.active_model, device=new.device,
                             review_threshold_override=new.review_threshold_override,
                             operator_name=new.operator_name, lab_name=new.lab_name)
        if new.operator_name != old.operator_name:
            self.samples_panel.default_operator = new.operator_name
        if (new.active_model, new.device, new.review_threshold_override) != (
                old.active_model, old.device, old.review_threshold_override):
            self.load_model_info()
            self.show_message("Settings saved. The new model settings apply from the next sample classified.")
        else:
            self.show_message("Settings saved.", 4000)

    def close_current_sample(self) -> bool:
        """Take the selected sample off the list; refused while it is queued or being classified."""
        sample = self.samples_panel.current_sample()
        if sample is None:
            return False
        if self.batch.is_active(sample):
            self.show_message(f"Sample {sample.sample_id} is in the batch queue: remove it there (or let it "
                              "finish) before closing it.")
            return False
        self.samples_panel.remove_sample(sample)
        kept = " Its results stay in the result history (listed again at the next start)." if sample.store_id else ""
        self.show_message(f"Closed sample {sample.sample_id}.{kept}")
        self._update_actions()
        return True

    def show_audit_trail(self) -> None:
        from gui.audit_dialog import AuditDialog

        if self.store is None:
            gui_errors.show_error(self, f"The result history cannot be used: {self.store_error}")
            return
        AuditDialog(self.store, self).exec()

    def _show_about(self) -> None:
        from engine.core.logging_setup import log_dir
        from gui import dialogs

        dialogs.show_about(self, str(log_dir() / "allsight.log"))

    # ------------------------------------------------------------------ closing
    def warm_up_model(self) -> None:
        """Load the active model in the background (idle time), if one is installed."""
        if self.model_card is None or self.model_host.loaded() is not None:
            return
        self.workers.submit(self.model_host.batch_classifier, name="warm up model",
                            on_error=lambda err: log.info("model warm-up failed: %s", err))

    def shutdown(self) -> None:
        """Stop background work and close the store (idempotent). Called on close; tests call it
        in teardown. A batch in progress stops; what it classified is already saved, and
        classifying the sample again resumes it."""
        if self._closed:
            return
        self._closed = True
        gui_errors.remove_listener(self._on_error_shown)
        self.preview_panel.stop()
        self.batch.shutdown()
        self.workers.shutdown()
        self.model_host.release()
        if self.store is not None and self._owns_store:
            self.store.close()

    def confirm_stop(self, *, quitting: bool) -> bool:
        """Ask before stopping a running classification (True: go ahead; also when none runs)."""
        from gui import dialogs

        job = self.batch.current_job()
        if job is None or self._closed:
            return True
        queued = sum(1 for j in self.batch.jobs if j.state == JobState.QUEUED)
        text = stop_question(job.label, job.done, job.total, queued, quitting=quitting)
        if quitting:
            return dialogs.confirm(self, "Quit ALLSight?", text, "Quit", "Keep classifying")
        return dialogs.confirm(self, "Stop classifying?", text, "Stop", "Keep classifying")

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_stop(quitting=True):
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)
