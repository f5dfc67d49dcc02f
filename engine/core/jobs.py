"""The state of a classification job (one sample in a batch queue), shared by every front end."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is. A member equals its string (``JobState.DONE == "done"``)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """For people: "Queued", "Running", ..."""
        return self.value.capitalize()

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


#: States in which a job still has work to do when Start is pressed.
RESTARTABLE: tuple[JobState, ...] = (JobState.QUEUED, JobState.CANCELLED, JobState.FAILED)

__all__ = ["RESTARTABLE", "JobState"]
