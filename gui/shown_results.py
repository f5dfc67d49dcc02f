"""Which sample the main window's Results tab shows, and filling it: the title, the stored
records (read off the GUI thread; a later request supersedes an earlier one), the sign-off and
batch-job state, and the sample's status note from the table's summary. Also the link between a
table row and the sample's image (selecting a result shows its image).

:class:`ShownResults` is driven by the samples panel's ``current_sample_changed`` and the table's
``current_row_changed`` (connected in :class:`gui.main_window.MainWindow`). When stored records
have been shown it emits ``records_shown``, so the image on show (:mod:`gui.current_image`) can
select its row and offer its heat map; this module knows nothing of the image itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from engine.core.jobs import JobState
from engine.store.naming import image_key
from gui import errors as gui_errors
from gui.scrolling import show_panel
from gui.workbench import note_from_results
from gui.workers import PRIORITY_INTERACTIVE, TaskError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow, QTabWidget

    from engine.core.records import ReviewedImage
    from engine.store.results import ResultStore
    from gui.batch import BatchQueue
    from gui.results import ResultsPanel
    from gui.samples import SamplesPanel
    from gui.workbench import Sample, Workbench
    from gui.workers import WorkerPool


def results_title(sample: Sample) -> str:
    """The Results tab's heading: ``Sample S-1 · patient P-7 · 12 images``."""
    parts = [f"Sample {sample.sample_id}"]
    if sample.patient_id:
        parts.append(f"patient {sample.patient_id}")
    parts.append(f"{len(sample.images)} images")
    return " · ".join(parts)


class ShownResults(QObject):
    """The Results tab's sample (``sample``) and the reading of its stored records."""

    records_shown = Signal()  # the stored records of ``sample`` are in the table

    def __init__(self, window: QMainWindow, *, store: ResultStore | None, workbench: Workbench,
                 workers: WorkerPool, batch: BatchQueue, samples_panel: SamplesPanel,
                 results_panel: ResultsPanel, side_tabs: QTabWidget):
        super().__init__(window)
        self.window = window  # the parent of error dialogs
        self.store = store
        self.workbench = workbench
        self.workers = workers
        self.batch = batch
        self.samples_panel = samples_panel
        self.panel = results_panel
        self.side_tabs = side_tabs
        self.sample: Sample | None = None
        self.loading = False  # the stored records of ``sample`` are being read
        self._request = 0
        self._positions: dict[int, dict[str, int]] = {}

    # ------------------------------------------------------------------ which sample
    def show(self, sample: Sample | None) -> None:
        """Show ``sample``'s results (None: an empty tab); its stored records arrive later."""
        self.sample = sample
        self._request += 1
        rp = self.panel
        if sample is None:
            self.loading = False
            rp.clear()
            return
        rp.set_sample(results_title(sample), [], len(sample.images))
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        rp.set_job_state(self.job_state_of(sample))
        if sample.store_id is None or self.store is None:
            self.loading = False
            return
        self.loading = True
        request = self._request
        self.workers.submit(self.workbench.read_records, sample, priority=PRIORITY_INTERACTIVE,
                            name="read results",
                            on_result=lambda records: self._on_records(request, sample, records),
                            on_error=lambda err: self._on_records_error(request, err))

    def _on_records(self, request: int, sample: Sample, records: list[ReviewedImage]) -> None:
        if request != self._request:
            return
        self.loading = False
        rows = list(records)
        known = {r.path for r in rows}
        newer = [r for r in self.panel.model.rows if r.path not in known]  # arrived meanwhile
        rp = self.panel
        rp.set_sample(results_title(sample), rows, len(sample.images))
        if newer:
            rp.add_results(newer)
        self.workbench.refresh_sign_state(sample)
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        rp.set_job_state(self.job_state_of(sample))
        if rows:
            show_panel(self.side_tabs, rp)
            self.update_note(sample)
        self.records_shown.emit()

    def _on_records_error(self, request: int, err: TaskError) -> None:
        if request == self._request:
            self.loading = False
        gui_errors.show_error(self.window, "The stored results could not be read: "
                                           f"{gui_errors.error_message(err.exc)}", err.details)

    def show_adopted(self, sample: Sample) -> None:
        """The sample took a stored sample's IDs and state: show them."""
        self.samples_panel.refresh_sample(sample)
        if sample is self.sample:
            self.show(sample)

    def retitle(self, sample: Sample) -> None:
        """The sample's IDs changed: the heading follows (if it is the one shown)."""
        if sample is self.sample:
            self.panel.set_title(results_title(sample))

    # ------------------------------------------------------------------ state shown
    def job_state_of(self, sample: Sample) -> JobState | None:
        job = self.batch.job_for(sample)
        return job.state if job is not None else None

    def show_job_state(self) -> None:
        if self.sample is not None:
            self.panel.set_job_state(self.job_state_of(self.sample))

    def update_note(self, sample: Sample) -> None:
        """The sample's status note from the table's summary (not while it is being classified)."""
        summary = self.panel.summary
        if summary is None or self.batch.is_active(sample):
            return
        last = self.batch.last_job_for(sample)
        if last is not None and last.state in (JobState.CANCELLED, JobState.FAILED) and self.panel.n_pending:
            return  # the ended job's own note ("5/40 classified (stopped)", "failed") says more
        sample.status_note = note_from_results(len(sample.images), self.panel.n_pending,
                                               summary.n_flagged_unreviewed)
        self.samples_panel.refresh_sample(sample)

    def has_ok_result(self, sample: Sample, path: str) -> bool:
        """Whether the table shows ``sample`` and a usable result for its image ``path`` (a key)."""
        if sample is not self.sample:
            return False
        model = self.panel.model
        row = model.row_data(model.row_of(path))
        return row is not None and row.ok

    # ------------------------------------------------------------------ table row <-> image
    def positions_of(self, sample: Sample) -> dict[str, int]:
        """Each image's row in the samples panel, by its key (:func:`engine.store.naming.image_key`)."""
        positions = self._positions.get(id(sample))
        if positions is None or len(positions) != len(sample.images):
            positions = {image_key(im.path): i for i, im in enumerate(sample.images)}
            self._positions[id(sample)] = positions
        return positions

    def on_row_selected(self, row: ReviewedImage | None) -> None:
        """A result was selected in the table: show its image."""
        sample = self.sample
        if row is None or sample is None or sample is not self.samples_panel.current_sample():
            return
        index = self.positions_of(sample).get(row.path, -1)
        if index >= 0 and index != self.samples_panel.current_row():
            self.samples_panel.set_current_row(index)
