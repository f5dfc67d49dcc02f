"""A job's state: one StrEnum for every front end."""

from __future__ import annotations

from engine.core.jobs import RESTARTABLE, JobState


def test_job_states_equal_their_strings_and_say_when_finished():
    assert JobState.DONE == "done" and JobState("cancelled") is JobState.CANCELLED
    assert [s for s in JobState if s.finished] == [JobState.DONE, JobState.CANCELLED, JobState.FAILED]
    assert JobState.RUNNING.label == "Running" and JobState.RUNNING not in RESTARTABLE
