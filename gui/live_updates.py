"""Live shared state: what other workstations (or other windows) commit to the result store shows
up in this window within seconds, without a restart.

A :class:`~engine.store.changes.ChangeWatcher` (LISTEN/NOTIFY on a lab's PostgreSQL, polling on
SQLite) runs on a thread of its own, because it blocks for as long as nothing changes; each
:class:`~engine.store.changes.StoreChange` it sees is handed to the GUI thread by a queued signal.
There the window asks a worker (:class:`~gui.workers.WorkerPool`) to read what the change is
about — the stored samples it names, the shown sample's records — and applies that on the GUI
thread:

* samples in the list take the stored IDs (a rename), patient, operator and sign-off state;
* stored samples this window has not listed yet (another workstation's) join the list;
* the shown sample's table takes the results it lacks and every review newer than the one shown,
  row by row, so the person's selection and scroll position stay where they were;
* a change of the lab's active model (another workstation shared one, or rolled back) is followed
  at once, verified by hash first (:mod:`gui.lab_model_sync`), as at start-up.

Nothing here writes. Reads are coalesced: while one is running, later changes are merged and read
once after it. Our own writes come back as changes too; reading them finds nothing new, and
nothing visible happens. While this window classifies a sample, changes about only the samples it
is classifying (its own results, mostly) are held and read once when the batch stops
(:meth:`LiveUpdates.catch_up`): reading the sample's records every second during a batch cost the
event loop its longest stalls and the batch 5 % of its speed (issue #17). A rename is never held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from engine.core.records import ImageStatus, ReviewedImage
from engine.store.changes import StoreChange
from engine.store.records import Sample as StoredSample
from gui.workbench import HistoryEntry, Sample
from gui.workers import PRIORITY_BACKGROUND, TaskError, WorkerPool

if TYPE_CHECKING:
    from engine.store.changes import ChangeWatcher
    from engine.store.results import ResultStore
    from gui.sample_list import SampleList
    from gui.samples_flow import SamplesFlow
    from gui.shown_results import ShownResults

log = logging.getLogger("allsight.gui.live_updates")

#: The audit action of a change of the lab's active model (engine.store.lab_models).
LAB_MODEL_ACTIVATED = "activate_lab_model"
#: How long closing the window waits for the watching thread (it notices within a quarter second;
#: a reconnection in progress takes up to the listener's 3 s connect timeout).
STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class Snapshot:
    """What a change is about, read from the store in a worker."""

    change: StoreChange
    #: The stored record of each sample the change names (by current ID; gone ones are left out).
    stored: dict[str, StoredSample] = field(default_factory=dict)
    #: Stored samples the window did not list when the read began: they join the list.
    new_entries: tuple[HistoryEntry, ...] = ()
    #: The shown sample's store ID and its records (None: it was not touched, or none is shown).
    shown_id: str | None = None
    shown_records: tuple[ReviewedImage, ...] | None = None


def merge(a: StoreChange, b: StoreChange) -> StoreChange:
    """One change covering ``a`` then ``b``."""
    return StoreChange(min(a.first_pk, b.first_pk), max(a.last_pk, b.last_pk), a.n_entries + b.n_entries,
                       a.sample_ids | b.sample_ids, a.renamed + b.renamed, a.actions | b.actions)


def newer_rows(shown: list[ReviewedImage], stored: tuple[ReviewedImage, ...]) -> tuple[list[ReviewedImage],
                                                                                      list[ReviewedImage]]:
    """``(rows the table lacks, rows whose stored review is newer than the one shown)``. A review
    is compared by its time, so a read that began before this window's own review was committed
    never puts the older review back."""
    by_path = {r.path: r for r in shown}
    missing, reviewed = [], []
    for row in stored:
        mine = by_path.get(row.path)
        if mine is None:
            missing.append(row)
        elif (row.reviewed_at or "") > (mine.reviewed_at or ""):
            reviewed.append(row)
        elif row.status == ImageStatus.OK and (mine.status != ImageStatus.OK or row.image_sha256 != mine.image_sha256):
            missing.append(row)  # another workstation classified it again (a retried error, a replaced file)
    return missing, reviewed


class LiveUpdates(QObject):
    """Runs the store's change watcher and applies what it sees to the window (module docstring)."""

    #: A change seen by the watching thread (delivered to the GUI thread: a queued connection).
    seen = Signal(object)
    #: A change has been applied to the window (tests wait for it).
    applied = Signal(object)

    def __init__(self, parent: QObject, *, store: ResultStore, workers: WorkerPool, samples_panel: SampleList,
                 samples_flow: SamplesFlow, results: ShownResults, model_sha: Callable[[], str | None],
                 on_lab_model: Callable[[], object] | None = None, poll_s: float | None = None,
                 classifying: Callable[[], frozenset[str]] = frozenset):
        super().__init__(parent)
        self.store, self.workers = store, workers
        self.samples_panel, self.samples_flow, self.results = samples_panel, samples_flow, results
        self._model_sha = model_sha
        self._on_lab_model = on_lab_model
        self._poll_s = poll_s
        self._watcher: ChangeWatcher | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._reading = False
        self._waiting: StoreChange | None = None  # seen while a read was running
        #: Store IDs of the samples this window is classifying now (their changes are held).
        self._classifying = classifying
        self._held: StoreChange | None = None  # about those samples only: read by catch_up()
        self.seen.connect(self._on_seen)

    # ------------------------------------------------------------------ the watching thread
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="allsight-live-updates")
        self._thread.start()

    def _watch(self) -> None:  # the watching thread: never touches a widget
        try:
            watcher = self.store.watch_changes(poll_s=self._poll_s)
        except Exception:  # noqa: BLE001 - live updates are a convenience: the window works without them
            log.exception("live updates could not start")
            return
        self._watcher = watcher
        if self._stopping.is_set():
            watcher.close()
            return
        try:
            for change in watcher.changes():
                if self._stopping.is_set():
                    break
                self.seen.emit(change)
        except Exception:  # noqa: BLE001 - as above; the reason is in the log
            log.exception("live updates stopped")
        finally:
            watcher.close()

    def stop(self) -> None:
        """Stop watching and wait for the thread (idempotent; called when the window closes)."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.close()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
            if self._thread.is_alive():
                log.warning("live updates: the watching thread did not stop within %.0f s", STOP_WAIT_S)
            self._thread = None

    @property
    def problem(self) -> str | None:
        """What keeps live updates from working, in words (None: nothing)."""
        return self._watcher.problem if self._watcher is not None else None

    # ------------------------------------------------------------------ GUI thread
    def _on_seen(self, change: StoreChange) -> None:
        if self._stopping.is_set():
            return
        if LAB_MODEL_ACTIVATED in change.actions and self._on_lab_model is not None:
            self._on_lab_model()  # another workstation changed the lab's model: follow it (verified)
        if not change.sample_ids:
            return  # about no sample (accounts, models, policy): nothing in the window to refresh
        if not change.renamed and change.sample_ids <= self._classifying():
            self._held = change if self._held is None else merge(self._held, change)
            return
        if self._reading:
            self._waiting = change if self._waiting is None else merge(self._waiting, change)
            return
        self._read(change)

    def catch_up(self) -> None:
        """Read what was held while this window classified (the batch stopped, or a job ended)."""
        if self._held is not None and not self._stopping.is_set():
            change, self._held = self._held, None
            self._on_seen(change)

    def _read(self, change: StoreChange) -> None:
        listed = frozenset(s.store_id for s in self.samples_panel.samples if s.store_id is not None)
        shown = self.results.sample
        shown_id = shown.store_id if shown is not None and change.touches(shown.store_id) else None
        read_new = self.samples_flow.history_loaded  # before that, the start-up read lists everything
        self._reading = True
        self.workers.submit(self._snapshot, change, listed, shown_id, read_new, self._model_sha(),
                            priority=PRIORITY_BACKGROUND, name="read others' changes",
                            on_result=self._apply, on_error=self._on_error)

    def _snapshot(self, change: StoreChange, listed: frozenset[str], shown_id: str | None, read_new: bool,
                  model_sha: str | None) -> Snapshot:  # a worker thread
        store = self.store
        stored = {}
        for sample_id in change.sample_ids:
            record = store.get_sample(sample_id)
            if record is not None:
                stored[sample_id] = record
        known = listed | {change.current_id(sample_id) for sample_id in listed}  # listed under an old ID
        entries = []
        if read_new:
            for sample_id, record in sorted(stored.items()):
                if sample_id in known:
                    continue
                paths = tuple(im.path for im in store.images(sample_id))
                pending = len(store.pending_paths(sample_id, model_sha)) if model_sha else None
                entries.append(HistoryEntry(record, paths, pending))
        records = None
        if shown_id is not None:
            shown_id = change.current_id(shown_id)
            records = tuple(store.predictions(shown_id)) if shown_id in stored else None
        return Snapshot(change, stored, tuple(entries), shown_id, records)

    def _on_error(self, err: TaskError) -> None:
        # Not a dialog: nothing the person did failed, and the next change (or poll) reads again.
        log.warning("live updates: reading other workstations' changes failed: %s", err.exc)
        self._done()

    def _apply(self, snap: Snapshot) -> None:
        if self._stopping.is_set():
            return
        change = snap.change
        for sample in list(self.samples_panel.samples):
            if sample.store_id is None or not change.touches(sample.store_id):
                continue
            current = change.current_id(sample.store_id)
            record = snap.stored.get(current)
            if record is not None:
                self._take_stored(sample, record)
        if snap.new_entries:
            listed = {s.store_id for s in self.samples_panel.samples}
            fresh = [e for e in snap.new_entries if e.sample.sample_id not in listed]
            if fresh:
                self.samples_flow.on_history(fresh)
        self._refresh_shown(snap)
        self.applied.emit(change)
        self._done()

    def _take_stored(self, sample: Sample, record: StoredSample) -> None:
        renamed = sample.store_id != record.sample_id
        if renamed:
            sample.store_id = sample.sample_id = record.sample_id
        sample.patient_id, sample.operator = record.patient_id, record.operator
        sample.signed_off_by, sample.signed_off_at = record.signed_off_by, record.signed_off_at
        self.samples_panel.refresh_sample(sample)
        if renamed:
            self.results.retitle(sample)

    def _refresh_shown(self, snap: Snapshot) -> None:
        sample = self.results.sample
        if snap.shown_records is None or sample is None or sample.store_id != snap.shown_id or self.results.loading:
            return
        panel = self.results.panel
        missing, reviewed = newer_rows(list(panel.model.rows), snap.shown_records)
        if missing:
            panel.add_results(missing)
        for row in reviewed:
            panel.set_review(row.path, row.final_class, row.reviewed_by, row.reviewed_at)
        panel.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        if missing or reviewed:
            self.results.update_note(sample)

    def _done(self) -> None:
        self._reading = False
        if self._waiting is not None and not self._stopping.is_set():
            change, self._waiting = self._waiting, None
            self._read(change)
