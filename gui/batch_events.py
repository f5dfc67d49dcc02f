"""What the batch thread posts for the GUI thread, and how one drain groups it.

The batch thread (:mod:`gui.batch`, :mod:`gui.batch_run`) never touches Qt: it appends these frozen
records to a queue that :meth:`gui.batch.BatchQueue.drain` empties on the GUI thread, in order.
:func:`group_results` folds consecutive results of one job into one :class:`ResultsArrived`, so a
drain emits one ``results`` signal per job however many images arrived since the last drain.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.core.records import ImageResult
    from engine.models.card import ModelCard
    from gui.batch_job import BatchJob


# What the batch thread posts for the GUI thread (drained by BatchQueue.drain, in order).
@dataclass(frozen=True)
class JobChanged:
    job: BatchJob
    #: The job ended (done, cancelled or failed): ``job_finished`` is emitted too.
    finished: bool = False


@dataclass(frozen=True)
class ResultArrived:
    job: BatchJob
    result: ImageResult


@dataclass(frozen=True)
class ModelReady:
    card: ModelCard
    runtime: str


@dataclass(frozen=True)
class JobFailed:
    message: str
    details: str


@dataclass(frozen=True)
class ThreadStopped:
    thread: threading.Thread


BatchEvent = JobChanged | ResultArrived | ModelReady | JobFailed | ThreadStopped


@dataclass(frozen=True)
class ResultsArrived:
    """Consecutive results of one job, delivered in one signal."""

    job: BatchJob
    results: tuple[ImageResult, ...]


def group_results(events: list[BatchEvent]) -> list[BatchEvent | ResultsArrived]:
    """``events`` in order, each run of consecutive results of one job folded into one :class:`ResultsArrived`."""
    runs: list[BatchEvent | list[ResultArrived]] = []
    for event in events:
        last = runs[-1] if runs else None
        if isinstance(event, ResultArrived) and isinstance(last, list) and last[0].job is event.job:
            last.append(event)
        else:
            runs.append([event] if isinstance(event, ResultArrived) else event)
    return [ResultsArrived(run[0].job, tuple(e.result for e in run)) if isinstance(run, list) else run
            for run in runs]
