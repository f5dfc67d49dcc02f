"""One sample in the batch queue: :class:`BatchJob`, its state and progress numbers, and how its
time left is shown (:func:`format_eta`).

The batch thread (:mod:`gui.batch`, :mod:`gui.batch_run`) writes a job's numbers as results arrive;
the GUI thread reads them when it redraws (:mod:`gui.queue_panel`), so the rate and ETA are
derived here from those numbers rather than tracked separately.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.core.jobs import JobState
from engine.core.progress import CancelToken

if TYPE_CHECKING:
    from gui.workbench import Sample

QUEUED, RUNNING, DONE, CANCELLED, FAILED = (JobState.QUEUED, JobState.RUNNING, JobState.DONE,
                                             JobState.CANCELLED, JobState.FAILED)

_keys = itertools.count(1)


@dataclass(eq=False)
class BatchJob:
    """One sample in the queue. Numbers are written by the batch thread and read by the GUI."""

    sample: Sample
    store_id: str
    paths: list[str]
    actor: str = ""
    key: int = field(default_factory=lambda: next(_keys))
    state: JobState = QUEUED
    #: Images in the sample / with a prediction of the model (incl. before this run).
    total: int = 0
    done: int = 0
    done_before: int = 0
    errors: int = 0
    #: Seconds spent classifying in this run (model loading and pauses excluded).
    active_s: float = 0.0
    message: str = ""
    cancel: CancelToken = field(default_factory=CancelToken)

    @property
    def label(self) -> str:
        return getattr(self.sample, "sample_id", self.store_id)

    @property
    def run_done(self) -> int:
        return max(0, self.done - self.done_before)

    @property
    def rate(self) -> float | None:
        """Images per second in this run (None until measurable)."""
        if self.run_done < 1 or self.active_s < 0.2:
            return None
        return self.run_done / self.active_s

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done) if self.total else len(self.paths)

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return None if rate is None or self.state != RUNNING else self.remaining / rate

    @property
    def fraction(self) -> float:
        if self.state == DONE:
            return 1.0
        return self.done / self.total if self.total else 0.0


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
