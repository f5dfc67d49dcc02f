"""The batch queue: samples waiting to be classified, run one after another in one thread.

:class:`BatchQueue` owns one Python thread (``allsight-batch``) that takes the first queued
:class:`~gui.batch_job.BatchJob` and runs it (:class:`gui.batch_run.JobRun`: the sample's images the
active model has not classified yet, streamed through the model's child process, the results
committed to the store as they arrive, a network batch at a time). Results reach the GUI thread through a queue of
:mod:`gui.batch_events` records that a 100 ms timer drains, so the event loop handles a handful of
grouped updates per second, whatever the throughput.

Pause stops pulling results (the thread waits on an event between images); Resume releases it.
Cancel stops the running job through its :class:`~engine.core.progress.CancelToken` and halts the
queue (the jobs behind it stay queued; Start carries on). What was committed stays committed.
:meth:`BatchQueue.shutdown` cancels and joins the thread; the main window calls it on close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from engine.core.jobs import JobState
from engine.core.progress import CancelToken
from gui.batch_events import BatchEvent, JobChanged, JobFailed, ModelReady, ResultsArrived, ThreadStopped, group_results
from gui.batch_job import CANCELLED, DONE, FAILED, QUEUED, RUNNING, BatchJob
from gui.batch_run import ClassifierSource, JobRun
from gui.workers import lower_this_threads_priority

if TYPE_CHECKING:
    from engine.store.results import ResultStore
    from gui.workbench import Sample

log = logging.getLogger("allsight.gui.batch")

#: How often results are handed to the GUI thread (ms).
DRAIN_INTERVAL_MS = 100
#: Images per network batch (small: pause and cancel take effect within one batch).
BATCH_SIZE = 16


class BatchQueue(QObject):
    """The queue of samples to classify and the thread that classifies them."""

    #: Jobs were added, removed, reordered or changed state.
    changed = Signal()
    #: Progress numbers moved (emitted at most once per drain).
    progress = Signal()
    #: (job, [ImageResult, ...]) committed to the store since the last drain, in order.
    results = Signal(object, object)
    #: A job ended (done, cancelled or failed).
    job_finished = Signal(object)
    #: (ModelCard, device description) of the classifier a job runs with.
    model_ready = Signal(object, str)
    #: (message, details): a job failed; the queue halts.
    failed = Signal(str, str)
    #: The thread started (True) or ended (False).
    running_changed = Signal(bool)

    def __init__(self, store: ResultStore, model_host: ClassifierSource, parent: QObject | None = None, *,
                 batch_size: int = BATCH_SIZE, decode_workers: int | None = None):
        super().__init__(parent)
        self.store = store
        self.model_host = model_host
        self.batch_size = batch_size
        if decode_workers is None:
            from gui.model_host import classifier_process_threads

            decode_workers = max(1, min(4, classifier_process_threads()))
        self.decode_workers = decode_workers
        self.jobs: list[BatchJob] = []
        self._lock = threading.Lock()
        self._resume = threading.Event()
        self._resume.set()
        self._halt = False  # stop taking new jobs (cancel, failure, shutdown)
        self._closed = False
        self._thread: threading.Thread | None = None
        #: The thread has found no more work and is ending (set under ``_lock``): a start() from
        #: then on needs a new thread, even before the "stopped" event is drained.
        self._thread_ending = False
        #: Threads that have ended or are ending, joined only off the GUI thread's hot path (by
        #: wait() and shutdown()): a low-priority thread can take a while to be scheduled to exit.
        self._ended_threads: list[threading.Thread] = []
        self._events: deque = deque()
        self._draining = False
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_INTERVAL_MS)
        self._timer.timeout.connect(self.drain)

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def current_job(self) -> BatchJob | None:
        return next((j for j in self.jobs if j.state == RUNNING), None)

    def running_store_ids(self) -> frozenset[str]:
        """Store IDs of the samples being classified now (gui.live_updates holds their changes)."""
        return frozenset(j.store_id for j in self.jobs if j.state == RUNNING and j.store_id)

    def job_for(self, sample: Sample) -> BatchJob | None:
        """The sample's job that is queued or running, if any."""
        return next((j for j in self.jobs if j.sample is sample and j.state in (QUEUED, RUNNING)), None)

    def last_job_for(self, sample: Sample) -> BatchJob | None:
        """The sample's latest job in the queue, in whatever state."""
        return next((j for j in reversed(self.jobs) if j.sample is sample), None)

    def is_active(self, sample: Sample) -> bool:
        return self.job_for(sample) is not None

    def totals(self) -> tuple[int, int]:
        """(images classified, images in all jobs) over the queue."""
        done = total = 0
        for j in self.jobs:
            t = j.total or len(j.paths)
            total += t
            done += t if j.state == DONE else j.done
        return done, total

    # ------------------------------------------------------------------ editing the queue
    def add(self, sample: Sample, store_id: str, paths: list[str], actor: str = "") -> BatchJob:
        """Queue a sample (again): an existing queued or running job for it is returned as is;
        a finished, cancelled or failed one is replaced by a fresh job at the end."""
        existing = self.job_for(sample)
        if existing is not None:
            return existing
        with self._lock:
            self.jobs = [j for j in self.jobs if j.sample is not sample]
            job = BatchJob(sample, store_id, list(paths), actor)
            self.jobs.append(job)
        self.changed.emit()
        return job

    def remove(self, job: BatchJob) -> None:
        """Take a job out of the queue (a running one is cancelled first)."""
        if job.state == RUNNING:
            job.cancel.cancel()
            self._resume.set()
        with self._lock:
            if job in self.jobs:
                self.jobs.remove(job)
        self.changed.emit()

    def move(self, job: BatchJob, delta: int) -> bool:
        with self._lock:
            if job not in self.jobs:
                return False
            i = self.jobs.index(job)
            j = i + delta
            if not 0 <= j < len(self.jobs):
                return False
            self.jobs[i], self.jobs[j] = self.jobs[j], self.jobs[i]
        self.changed.emit()
        return True

    def move_to(self, job: BatchJob, index: int) -> bool:
        """Put ``job`` at position ``index`` of the queue (clamped); True when it moved."""
        with self._lock:
            if job not in self.jobs:
                return False
            i = self.jobs.index(job)
            index = max(0, min(int(index), len(self.jobs) - 1))
            if index == i:
                return False
            self.jobs.insert(index, self.jobs.pop(i))
        self.changed.emit()
        return True

    def clear_finished(self) -> None:
        with self._lock:
            self.jobs = [j for j in self.jobs if j.state in (QUEUED, RUNNING)]
        self.changed.emit()

    # ------------------------------------------------------------------ running
    def start(self) -> bool:
        """Run every job that still has work (cancelled and failed ones are queued again)."""
        if self._closed:
            return False
        with self._lock:
            for job in self.jobs:
                if job.state in (CANCELLED, FAILED):
                    job.state, job.cancel, job.message = QUEUED, CancelToken(), ""
            has_work = any(j.state == QUEUED for j in self.jobs)
            self._halt = False
            new_thread = has_work and (self._thread is None or self._thread_ending)
            was_running = self._thread is not None
            ending = self._thread if new_thread and self._thread_ending else None
            if new_thread:
                self._thread = threading.Thread(target=self._run, name="allsight-batch", daemon=False)
                self._thread_ending = False
                self._thread.start()
        if ending is not None:
            self._retire(ending)  # it only has its "stopped" event left to post
        self._resume.set()
        self.changed.emit()
        if new_thread:
            self._timer.start()
            if not was_running:
                self.running_changed.emit(True)
        return has_work

    def pause(self) -> None:
        if self._thread is not None:
            self._resume.clear()
            self.changed.emit()

    def resume(self) -> None:
        self._resume.set()
        self.changed.emit()

    def cancel(self) -> None:
        """Stop the running job (what it committed stays) and halt the queue."""
        with self._lock:
            self._halt = True
            for job in self.jobs:
                if job.state == RUNNING:
                    job.cancel.cancel()
        self._resume.set()
        self.changed.emit()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the thread (tests); True when it has ended. Results are delivered by drain()."""
        self._join_ended(timeout)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _retire(self, thread: threading.Thread) -> None:
        """Keep an ending thread for a later join (the list holds only the ones still alive)."""
        self._ended_threads = [t for t in self._ended_threads if t.is_alive() and t is not thread]
        if thread.is_alive():
            self._ended_threads.append(thread)

    def _join_ended(self, timeout: float | None) -> None:
        for thread in self._ended_threads:
            thread.join(timeout)
        self._ended_threads = [t for t in self._ended_threads if t.is_alive()]

    def shutdown(self, timeout: float = 60.0) -> None:
        """Cancel, join the thread and stop delivering (idempotent)."""
        self._closed = True
        self.cancel()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the batch thread did not stop within %.0f s", timeout)
        self._join_ended(timeout)
        self._timer.stop()
        self._events.clear()
        self._thread = None

    # ------------------------------------------------------------------ GUI-thread delivery
    def drain(self) -> None:
        """Hand what the thread produced to the GUI (runs every DRAIN_INTERVAL_MS)."""
        if self._draining or self._closed:
            return
        self._draining = True
        try:
            events: list[BatchEvent] = []
            while self._events:
                events.append(self._events.popleft())
            stopped = False
            for event in group_results(events):
                if isinstance(event, ResultsArrived):
                    self.results.emit(event.job, list(event.results))
                elif isinstance(event, JobChanged):
                    self.changed.emit()
                    if event.finished:
                        self.job_finished.emit(event.job)
                elif isinstance(event, ModelReady):
                    self.model_ready.emit(event.card, event.runtime)
                elif isinstance(event, JobFailed):
                    self.failed.emit(event.message, event.details)
                elif isinstance(event, ThreadStopped):
                    self._retire(event.thread)
                    stopped = stopped or event.thread is self._thread  # not an earlier, replaced thread
            if self._thread is not None:
                self.progress.emit()
            if stopped and self._thread is not None:
                self._thread = None
                self._timer.stop()
                self.changed.emit()
                self.running_changed.emit(False)
        finally:
            self._draining = False

    # ------------------------------------------------------------------ the batch thread
    def _post(self, event: BatchEvent) -> None:
        self._events.append(event)

    def _take_next(self) -> BatchJob | None:
        """The next queued job, marked running; None (and this thread marked as ending) when
        there is none or the queue is halted."""
        with self._lock:
            if not (self._halt or self._closed):
                for job in self.jobs:
                    if job.state == QUEUED:
                        job.state = RUNNING
                        return job
            if threading.current_thread() is self._thread:
                self._thread_ending = True
        return None

    def _finish(self, job: BatchJob, state: JobState, message: str = "") -> None:
        with self._lock:
            job.state, job.message = state, message
        self._post(JobChanged(job, finished=True))

    def _run(self) -> None:
        lower_this_threads_priority()  # committing results can wait; the event loop cannot
        try:
            while True:
                job = self._take_next()
                if job is None:
                    break
                self._post(JobChanged(job))
                self._run_job(job)
        finally:
            self._post(ThreadStopped(threading.current_thread()))

    def _wait_while_paused(self, job: BatchJob) -> float:
        """Block while paused; the seconds spent waiting."""
        if self._resume.is_set():
            return 0.0
        t0 = time.perf_counter()
        while not self._resume.wait(0.1):
            if job.cancel.cancelled or self._closed:
                break
        return time.perf_counter() - t0

    def _run_job(self, job: BatchJob) -> None:
        run = JobRun(job, self.store, self.model_host, batch_size=self.batch_size, workers=self.decode_workers,
                     post=self._post, wait_while_paused=self._wait_while_paused)
        try:
            outcome = run.run()
            if outcome.failure is not None:
                with self._lock:
                    self._halt = True
            self._finish(job, outcome.state, outcome.message)
            if outcome.failure is not None:
                self._post(outcome.failure)
        finally:
            run.close()  # after the outcome is posted: stopping the classifier can take a while
