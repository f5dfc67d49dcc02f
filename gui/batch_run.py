"""The batch thread's work on one job: classify a sample's pending images and say how it ended.

:class:`JobRun` gets the classifier from the model host (the model runs in a child process,
:meth:`gui.model_host.ModelHost.batch_classifier`), asks the result store which of the sample's
images the active model has not classified yet (:meth:`engine.store.results.ResultStore.pending_paths`
— so a re-run, or a run after a crash, resumes where it stopped), streams them through
:meth:`~engine.inference.process.ClassifierProcess.classify_paths` and commits the results to the
store as they arrive, a network batch per transaction (the store is thread-safe). It keeps the job's numbers and posts
:mod:`gui.batch_events` records for the GUI thread; which job runs next, halting and pausing are the
queue's (:class:`gui.batch.BatchQueue`), which runs this in its thread and posts the outcome.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.core.jobs import JobState
from engine.core.progress import CancelToken
from gui.batch_events import BatchEvent, JobChanged, JobFailed, ModelReady, ResultArrived
from gui.batch_job import CANCELLED, DONE, FAILED, BatchJob

if TYPE_CHECKING:
    from engine.core.records import ImageResult
    from engine.models.card import ModelCard
    from engine.store.results import ResultStore
    from engine.workflow.classification import ImageClassified, SamplePlan, StoreWait


class BatchClassifier(Protocol):
    """A classifier the batch thread runs (:class:`engine.inference.process.ClassifierProcess`)."""

    card: ModelCard
    runtime: str

    def classify_paths(self, paths: Iterable[str | Path], *, batch_size: int = ..., workers: int = ...,
                       cancel: CancelToken | None = None) -> Iterator[ImageResult]: ...


class ClassifierSource(Protocol):
    """Where the batch thread gets its classifier (:class:`gui.model_host.ModelHost`)."""

    def batch_classifier(self, cancel: CancelToken | None = None) -> BatchClassifier: ...

    def expected_weights_sha256(self) -> str | None: ...


# The queue's logger: a job's story reads as one log, whichever module tells it.
log = logging.getLogger("allsight.gui.batch")


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@dataclass(frozen=True)
class JobOutcome:
    """How a job's run ended: its final state and message, and the failure to report (which halts the queue)."""

    state: JobState
    message: str
    failure: JobFailed | None = None


class JobRun:
    """One run of one job, in the batch thread. :meth:`run` classifies and returns the outcome;
    :meth:`close` (once the queue has posted that outcome) stops the classifier's stream."""

    def __init__(self, job: BatchJob, store: ResultStore, model_host: ClassifierSource, *, batch_size: int,
                 workers: int, post: Callable[[BatchEvent], None], wait_while_paused: Callable[[BatchJob], float]):
        self.job = job
        self.store = store
        self.model_host = model_host
        self.batch_size = batch_size
        self.workers = workers
        self.post = post
        #: Blocks while the queue is paused; returns the seconds spent waiting.
        self.wait_while_paused = wait_while_paused
        self._events: Generator[ImageClassified, None, None] | None = None

    def run(self) -> JobOutcome:
        """Classify the job's pending images; how it ended (nothing is raised)."""
        from engine.core.errors import AllSightError, Cancelled

        job = self.job
        try:
            self._classify()
        except Cancelled:
            log.info("classification of sample %s cancelled after %d image(s)", job.store_id, job.run_done)
            return JobOutcome(CANCELLED, "Cancelled")
        except AllSightError as exc:
            log.warning("classification of sample %s failed: %s", job.store_id, exc)
            return JobOutcome(FAILED, str(exc), JobFailed(f"Sample {job.label}: {exc}", _traceback(exc)))
        except BaseException as exc:
            log.exception("classification of sample %s failed unexpectedly", job.store_id)
            return JobOutcome(FAILED, f"{type(exc).__name__}: {exc}",
                              JobFailed(f"Sample {job.label}: an unexpected error occurred: {type(exc).__name__}: "
                                        f"{exc}", _traceback(exc)))
        # "classified" counts what the summary counts as classified: the unreadable files apart
        return JobOutcome(DONE, f"{job.run_done - job.errors} classified"
                          + (f", {job.errors} could not be read" if job.errors else ""))

    def _waiting(self, wait: StoreWait) -> None:
        """The lab database is down: the job says so in the queue, and goes on when it is back."""
        text = wait.describe()
        self.job.message = text[:1].upper() + text[1:]
        self.post(JobChanged(self.job))

    def close(self) -> None:
        if self._events is not None:
            self._events.close()

    def _classifier_and_plan(self) -> tuple[BatchClassifier, SamplePlan]:
        """The classifier, and the job's plan for its model. Planning (registering the images,
        hashing each new file, finding what is pending: ~0.3-0.6 s for 1,000 images) runs in a
        helper thread while this one waits for the classifier process to start, so the first
        result comes that much sooner after the click (issue #17). The plan is made for the
        weights the card names; in the rare case the loaded model differs (the settings changed
        meanwhile) it is made again for the loaded one."""
        from engine.workflow.classification import prepare_sample

        job, store = self.job, self.store
        expected = self.model_host.expected_weights_sha256()
        early = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="allsight-plan") as planner:
            if expected:
                early = planner.submit(prepare_sample, store, job.store_id, job.paths, expected, actor=job.actor)
            try:
                classifier = self.model_host.batch_classifier(cancel=job.cancel)
            except BaseException:
                if early is not None:
                    early.cancel()  # the load's error is the one to report; the with waits for the plan
                raise
            plan = early.result() if early is not None else None  # a planning error is raised here
        self.post(ModelReady(classifier.card, classifier.runtime))
        job.cancel.raise_if_cancelled()
        if plan is None or classifier.card.weights_sha256 != expected:
            plan = prepare_sample(store, job.store_id, job.paths, classifier.card.weights_sha256, actor=job.actor)
        return classifier, plan

    def _classify(self) -> None:
        from engine.core.errors import AllSightError
        from engine.workflow.classification import classify_samples

        job, store = self.job, self.store
        classifier, plan = self._classifier_and_plan()
        card = classifier.card
        job.total, job.done_before = plan.total, plan.done_before
        job.done, job.errors, job.active_s = plan.done_before, 0, 0.0
        self.post(JobChanged(job))
        log.info("classifying %d of %d image(s) of sample %s with %s %s", len(plan.pending), job.total,
                 job.store_id, card.id, card.version)
        events = self._events = classify_samples(store, classifier, [plan], actor=job.actor,
                                                 batch_size=self.batch_size, workers=self.workers,
                                                 cancel=job.cancel, waiting=self._waiting)
        # The child process works on while this thread waits on the pipe, so the rate is
        # taken over wall time, pauses excluded.
        started, paused = time.perf_counter(), 0.0
        while True:
            paused += self.wait_while_paused(job)
            job.cancel.raise_if_cancelled()
            event = next(events, None)
            job.active_s = time.perf_counter() - started - paused
            if event is None:
                break
            if event.refusal:  # signed off on another workstation meanwhile
                raise AllSightError(f"the sample was signed off while it was being classified: {event.refusal}")
            if job.message:  # the lab database is back
                job.message = ""
                self.post(JobChanged(job))
            job.done = event.done
            job.errors += event.failed
            self.post(ResultArrived(job, event.result))
