"""The main window: samples on the left, the image in the middle, results and review (and the
preprocessing preview) on the right, the batch queue along the bottom, status at the foot.

Layout (attribute names in brackets)::

    [menuBar: file_menu, edit_menu, sample_menu, tools_menu, view_menu, help_menu]   [toolbar]
    [splitter: samples_panel | center_tabs ("Image" = viewer_panel) |
               side_tabs ("Results" = results_panel, "Preprocessing" = preview_panel)]
    [queue_dock: queue_panel]
    [statusBar: message · error_button · busy_label · identity_label · device_label · model_label · ruo_label]

Where the work lives: :mod:`gui.window_layout` builds the widgets, actions, menus and status bar;
:mod:`gui.workbench` (Qt-free) holds the workflow rules (registering, history, IDs, review,
sign-off, status notes); and the window owns one object per job, each with its own state:

* ``self.samples_flow`` (:mod:`gui.samples_flow`): opening folders (dialog, paths, drops), the
  stored samples merged in at start-up, saving edited IDs, ID locks, closing a sample;
* ``self.image`` (:mod:`gui.current_image`): the image on show, the preview's input, the mask
  overlay, the Grad-CAM heat map;
* ``self.results`` (:mod:`gui.shown_results`): the Results tab's sample and its stored records;
* ``self.classifying`` (:mod:`gui.classify_flow`): queueing, starting, what the batch reports;
* ``self.signing`` (:mod:`gui.sign_off_flow`): review, sign-off, reopening (asking the person);
* ``self.access`` (:mod:`gui.access_flow`): who acts (``self.identity``: the OS login, or the
  ALLSight account signed in when the lab requires accounts), signing in and out, what the
  person's role may do, Tools ▸ Accounts…; every change is recorded under ``identity.user``;
* :mod:`gui.settings_flow` (Edit ▸ Settings…: a model change needs the models permission and is audited);
* :mod:`gui.export_action` (Export report…) and :mod:`gui.model_status` (the model's labels).

This module creates them and wires the signals, and keeps the window's own: the store, the
model card, settings, the actions' enabled state, the error indicator, audit trail and About,
warm-up and closing. Its public methods (``open_paths``, ``classify_current``, ``sign_off``,
``export_current``, …), ``history_loaded`` and ``current_path``/``current_row``/``current_rgb``
hand over to the objects above.

Work off the GUI thread:

* ``self.workers`` (:class:`gui.workers.WorkerPool`): image decoding, thumbnails (those on show
  first; the others wait while a batch runs), the preview, reading a sample's results from the
  store, Grad-CAM, exports.
* ``self.batch`` (:class:`gui.batch.BatchQueue`): one thread classifying the queued samples
  in the classifier process of ``self.model_host`` (started there, or by the warm-up, on first
  use) and committing the results to ``self.store`` as they arrive (a network batch at a time).

``self.store`` (:class:`engine.store.results.ResultStore`: the local file at
:func:`engine.store.results.default_db_path`, or the lab database the settings name) is the
persistent history: samples are registered in it when first classified; their predictions,
reviews, sign-offs and ID edits are written there (each write audited by the store), and the
samples panel lists the stored samples at start-up. Short writes (a review, a sign-off, an ID
edit) run in the GUI thread: each is one small SQLite transaction.

Every error a person must see goes through :func:`gui.errors.show_error` (dialog + log + the
status bar's error indicator).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QWidget,
)

from engine import __version__
from engine.core.errors import AllSightError
from engine.core.jobs import JobState
from gui import errors as gui_errors
from gui import model_flow, model_status, settings_flow
from gui import window_layout as layout
from gui.access_flow import AccessFlow
from gui.batch import BatchQueue
from gui.batch_job import BatchJob
from gui.classify_flow import ClassifyFlow
from gui.current_image import CurrentImage
from gui.export_action import export_shown_sample
from gui.live_updates import LiveUpdates
from gui.model_host import ModelHost, ModelSpec
from gui.samples_flow import SamplesFlow, dropped_paths
from gui.settings import Settings, load_settings, save_settings
from gui.shown_results import ShownResults
from gui.sign_off_flow import SignOffFlow
from gui.workbench import Sample, Workbench, stop_question
from gui.workers import PRIORITY_INTERACTIVE, WorkerPool

if TYPE_CHECKING:
    import numpy as np

    from engine.core.identity import Identity
    from engine.models.card import ModelCard
    from engine.store.results import ResultStore

log = logging.getLogger("allsight.gui.main_window")

DEFAULT_SIZE = (1440, 920)


def fitting_size(wanted: tuple[int, int], available: tuple[int, int]) -> tuple[int, int]:
    """The window's first size: ``wanted``, but never larger than 95 % of the screen's free area
    (at 150 % display scaling a 1080p screen has 1280 × ~700 logical pixels)."""
    return (min(wanted[0], int(available[0] * 0.95)), min(wanted[1], int(available[1] * 0.95)))


def window_title() -> str:
    return f"ALLSight {__version__} — research use only"


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
        self.queue_panel.can_add = lambda: self.samples_panel.current_sample() is not None
        self.queue_panel.confirm_stop = lambda: self.confirm_stop(quitting=False)

        # What the window shows and does, each with its own state (see the module docstring).
        sp, rp = self.samples_panel, self.results_panel
        self.access = AccessFlow(self, store=self.store, batch=self.batch, samples_panel=sp, results_panel=rp)
        self.results = ShownResults(self, store=self.store, workbench=self.workbench, workers=self.workers,
                                    batch=self.batch, samples_panel=sp, results_panel=rp, side_tabs=self.side_tabs)
        self.image = CurrentImage(self, workers=self.workers, model_host=self.model_host, samples_panel=sp,
                                  viewer_panel=self.viewer_panel, preview_panel=self.preview_panel,
                                  results=self.results)
        self.classifying = ClassifyFlow(self, workbench=self.workbench, batch=self.batch, model_host=self.model_host,
                                        samples_panel=sp, results=self.results, image=self.image,
                                        side_tabs=self.side_tabs, queue_dock=self.queue_dock, access=self.access)
        self.signing = SignOffFlow(self, store=self.store, workbench=self.workbench, samples_panel=sp,
                                   results=self.results, access=self.access)
        self.samples_flow = SamplesFlow(self, store=self.store, workbench=self.workbench, batch=self.batch,
                                        samples_panel=sp, results=self.results, access=self.access)
        sp.lock_reason = self.samples_flow.lock_reason
        sp.confirm_split = self.samples_flow.confirm_split

        layout.build_actions(self)
        layout.build_menus(self)
        layout.build_status_bar(self)
        self._error_count = 0
        if self.store_error:
            self.show_message(f"Result history unavailable: {self.store_error}", 0)
        self.load_model_info()

        sp.set_open_action(self.act_open)
        sp.set_classify_action(self.act_classify)
        sp.current_image_changed.connect(self.image.show)
        sp.current_sample_changed.connect(self._on_current_sample_changed)
        sp.sample_updated.connect(self.image.on_sample_updated)
        sp.sample_edited.connect(self.samples_flow.on_sample_edited)
        sp.status_message.connect(self.show_message)
        self.viewer_panel.navigate.connect(self.step_image)
        self.viewer_panel.heatmap_requested.connect(self.image.request_heatmap)
        self.preview_panel.result_displayed.connect(self.image.on_preview_result)
        self.results.records_shown.connect(self.image.on_records_shown)
        self.workers.busy_changed.connect(self._on_busy_changed)

        rp.current_row_changed.connect(self.results.on_row_selected)
        rp.review_requested.connect(self.review)
        rp.withdraw_requested.connect(lambda path: self.review(path, None))
        rp.sign_off_requested.connect(self.sign_off)
        rp.reopen_requested.connect(self.reopen)
        rp.export_requested.connect(self.export_current)
        rp.status_message.connect(self.show_message)

        self.batch.results.connect(self.classifying.on_batch_results)
        self.batch.job_finished.connect(self.classifying.on_job_finished)
        self.batch.model_ready.connect(self._on_model_ready)
        self.batch.failed.connect(lambda message, details: gui_errors.show_error(self, message, details or None))
        self.batch.changed.connect(self.classifying.on_queue_changed)
        # Off-screen thumbnails wait while a batch runs: it gets the cores and the interpreter.
        self.batch.running_changed.connect(sp.pause_offscreen_thumbnails)
        self.queue_panel.add_requested.connect(self.queue_current)
        self.queue_panel.job_activated.connect(lambda job: self.samples_panel.select_sample(job.sample))
        gui_errors.add_listener(self._on_error_shown)

        self.access.set_identity(self.access.identity)  # the status bar's "Signed in: …"; update_actions
        if self.store is not None:
            self.workers.submit(self.workbench.read_history, self._model_sha(), priority=PRIORITY_INTERACTIVE,
                                name="read history", on_result=self.samples_flow.on_history)
        else:
            self.samples_flow.history_loaded = True
        from gui import lab_model_sync  # the lab's active model, verified, followed off the GUI thread

        lab_model_sync.start(self)
        # Other workstations' results, reviews and sign-offs appear within seconds (gui.live_updates).
        self.live_updates: LiveUpdates | None = None
        if self.store is not None:
            self.live_updates = LiveUpdates(self, store=self.store, workers=self.workers, samples_panel=sp,
                                            samples_flow=self.samples_flow, results=self.results,
                                            model_sha=self._model_sha,
                                            on_lab_model=lambda: lab_model_sync.start(self),
                                            classifying=self.batch.running_store_ids)
            self.batch.job_finished.connect(lambda _job: self.live_updates and self.live_updates.catch_up())
            self.live_updates.start()

    @property
    def identity(self) -> Identity | None:
        """Who acts: the OS login, or the signed-in ALLSight account (None: nobody signed in
        while the lab requires accounts)."""
        return self.access.identity

    def sign_in(self) -> bool:
        return self.access.sign_in()

    def sign_out(self) -> bool:
        return self.access.sign_out()

    def change_password(self) -> bool:
        return self.access.change_password()

    def open_accounts(self) -> bool:
        return self.access.open_accounts()

    # The image on show (tests and benchmarks read these).
    @property
    def current_path(self) -> Path | None:
        return self.image.path

    @property
    def current_row(self) -> int:
        return self.image.row

    @property
    def current_rgb(self) -> np.ndarray | None:
        return self.image.rgb

    # ------------------------------------------------------------------ construction
    def _open_store(self) -> None:
        """The lab database of the settings, else this workstation's own file (gui.lab_database);
        which one is named in the status bar, and a lab database that was not used is said once
        the window shows."""
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QLabel

        from gui.lab_database import open_window_store

        opened = open_window_store(self.settings, self)
        self.store, self.store_error, self.store_label = opened.store, opened.error, opened.label
        self.database_label = QLabel(opened.short_label, self)
        self.database_label.setToolTip(f"Result history: {self.store_label}")
        self.database_label.setStyleSheet("padding: 0 6px;")
        self.statusBar().addPermanentWidget(self.database_label)
        if opened.notice:
            QTimer.singleShot(0, self, lambda: gui_errors.show_error(self, opened.notice,
                                                                    title="ALLSight — lab database not used"))

    def add_center_tab(self, widget: QWidget, title: str) -> int:
        return self.center_tabs.addTab(widget, title)

    def show_message(self, text: str, msecs: int = 8000) -> None:
        self.statusBar().showMessage(text, msecs)

    # ------------------------------------------------------------------ model
    def _model_spec(self) -> ModelSpec:
        """The model to load: the pinned one, or the library's active model by its card's path,
        so that activating another model (Tools ▸ Models…) changes the spec and reloads."""
        s = self.settings
        card_path = getattr(self.model_card, "path", None)
        model = s.active_model or (str(card_path) if card_path is not None else "")
        return ModelSpec(model, s.device, s.review_threshold_override, s.precision)

    def _model_sha(self) -> str | None:
        return getattr(self.model_card, "weights_sha256", None) or None

    def load_model_info(self) -> None:
        """Read the active model's card (cheap: JSON only, no torch). No model installed is a
        normal state: the status bar says so and the preview uses the research defaults."""
        from engine.models.resolve import resolve_model_card

        model_status.show_device(self.device_label, self.settings.device, None)
        model = self.settings.active_model
        try:
            card = resolve_model_card(model)
        except (AllSightError, OSError) as exc:
            self.model_card, self.model_error = None, str(exc)
            self.model_host.configure(self._model_spec())
            log.warning("active model %r unavailable: %s", model, exc)
            model_status.show_no_model(self.model_label, self.preview_panel, model, exc)
            self.update_actions()
            return
        self.model_card, self.model_error = card, None
        self.model_host.configure(self._model_spec())
        model_status.show_model(self.model_label, self.preview_panel, card, self.settings.review_threshold_override)
        self.update_actions()

    def _on_model_ready(self, card: ModelCard, device: str) -> None:
        model_status.show_device(self.device_label, self.settings.device, device)

    # ------------------------------------------------------------------ samples (gui.samples_flow)
    def open_folders_dialog(self) -> None:
        self.samples_flow.open_folders_dialog()

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open folders (one sample each) and/or image files; remembers where they came from."""
        self.samples_flow.open_paths(paths)

    def close_current_sample(self) -> bool:
        """Take the selected sample off the list; refused while it is queued or being classified."""
        return self.samples_flow.close_current_sample()

    @property
    def history_loaded(self) -> bool:
        return self.samples_flow.history_loaded

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
        else:
            event.ignore()

    def _on_current_sample_changed(self, sample: Sample | None) -> None:
        self.results.show(sample)
        self.update_actions()

    def step_image(self, delta: int) -> None:
        self.samples_panel.step_image(delta)

    # ------------------------------------------------------------------ classify, review, export
    # (the work is in gui.classify_flow, gui.sign_off_flow and gui.export_action)
    def queue_sample(self, sample: Sample | None, *, start: bool = False) -> BatchJob | None:
        """Put a sample in the batch queue (registering it in the store first)."""
        return self.classifying.queue_sample(sample, start=start)

    def queue_current(self) -> BatchJob | None:
        return self.classifying.queue_current()

    def classify_current(self) -> BatchJob | None:
        """One click: queue the selected sample and start."""
        return self.classifying.classify_current()

    def review(self, path: str, final_class: str | None) -> bool:
        """Record the reviewer's class for one image of the results sample (None: withdraw it)."""
        return self.signing.review(path, final_class)

    def sign_off(self) -> bool:
        return self.signing.sign_off()

    def reopen(self) -> bool:
        return self.signing.reopen()

    def export_current(self) -> bool:
        return export_shown_sample(self, self.results, self.store, self.workers, self.access)

    # ------------------------------------------------------------------ status, settings
    def _on_busy_changed(self, pending: int) -> None:
        self.busy_label.setText(f"Working… ({pending})" if pending else "")

    def _on_error_shown(self, message: str, _details: str) -> None:
        self._error_count += 1
        self.error_button.setText(f"⚠ {self._error_count} error{'s' if self._error_count > 1 else ''}")
        self.error_button.setToolTip(f"Latest: {message}\nClick for the details (also in the log file).")
        self.error_button.show()
        self.show_message(f"Error: {message}", 15000)

    def update_actions(self) -> None:
        """Enable the actions (and their tooltips) for the selected sample and the results sample."""
        sample = self.samples_panel.current_sample() if hasattr(self, "samples_panel") else None
        if not hasattr(self, "act_classify"):
            return
        ok = (self.classifying.can_classify(sample, quiet=True)
              and not (sample is not None and self.batch.is_active(sample)))
        self.act_classify.setEnabled(ok)
        if sample is not None and sample.signed_off:
            self.act_classify.setToolTip("Signed off: reopen the sample to classify it again")
        elif self.model_card is None:
            self.act_classify.setToolTip(f"No model available: {self.model_error}")
        else:
            self.act_classify.setToolTip("Classify the selected sample (Ctrl+R)")
        rs = self.results.sample
        self.act_sign_off.setEnabled(rs is not None and not rs.signed_off)
        self.act_reopen.setEnabled(rs is not None and rs.signed_off)
        self.act_export.setEnabled(rs is not None and rs.store_id is not None)
        self.queue_panel._update_buttons()
        self.access.update_actions()  # what the person's role may not do: disabled, the tooltip says why

    def update_settings(self, **changes) -> None:
        self.settings = self.settings.replace(**changes)
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("settings could not be saved: %s", exc)
            self.show_message(f"Settings could not be saved: {exc}", 10000)

    def open_settings(self) -> bool:
        return settings_flow.open_settings(self)

    def apply_settings(self, new: Settings) -> bool:
        """Save edited settings and apply what changed (a model change needs the models permission)."""
        return settings_flow.apply_settings(self, new)

    def open_models(self) -> bool:
        return model_flow.open_models(self)

    def follow_active_model(self) -> None:
        model_flow.follow_active_model(self)

    def open_retrain_wizard(self) -> bool:
        return model_flow.open_retrain_wizard(self)

    def show_audit_trail(self) -> None:
        from gui.audit_dialog import AuditDialog

        if self.store is None:
            gui_errors.show_error(self, f"The result history cannot be used: {self.store_error}")
            return
        AuditDialog(self.store, self, actor=self.access.user).exec()

    def _show_about(self) -> None:
        from engine.core.logging_setup import log_dir
        from gui import dialogs

        dialogs.show_about(self, str(log_dir() / "allsight.log"))

    # ------------------------------------------------------------------ closing
    def warm_up_model(self) -> None:
        """Start the active model's classifier process in the background, if one is installed
        (its own thread: a worker thread waiting on it would hold up the folder scan)."""
        if self.model_card is None or self.model_host.loaded() is not None:
            return
        self.model_host.warm_up()

    def shutdown(self) -> None:
        """Stop background work and close the store (idempotent). Called on close; tests call it
        in teardown. A batch in progress stops; what it classified is already saved, and
        classifying the sample again resumes it."""
        if self._closed:
            return
        self._closed = True
        gui_errors.remove_listener(self._on_error_shown)
        self.preview_panel.stop()
        if self.live_updates is not None:
            self.live_updates.stop()
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
        # Gone from the screen at once: stopping the model's child process takes about a second
        # (docs/performance.md), which the person should not watch as a frozen window.
        self.hide()
        self.shutdown()
        super().closeEvent(event)
