"""gui.batch: the queue's order, editing, pause/cancel/resume, failures and grouped delivery,
with a fake classifier over a real result store (no model, no child process)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.core.errors import ModelError
from engine.store.results import ResultStore
from gui.batch import BatchQueue
from gui.batch_job import CANCELLED, DONE, FAILED, QUEUED, RUNNING, BatchJob, format_eta
from tests.gui.fakes import SHA, FakeClassifier, FakeHost


@pytest.fixture
def make_queue(qtbot, store):
    made: list[BatchQueue] = []

    def make(host: FakeHost) -> BatchQueue:
        q = BatchQueue(store, host, batch_size=2, decode_workers=1)
        made.append(q)
        return q

    yield make
    for q in made:
        q.shutdown(10)


def add_sample(queue: BatchQueue, store: ResultStore, tmp_path, name: str, n: int) -> BatchJob:
    store.create_or_get_sample(name, tmp_path)
    paths = [str(tmp_path / name / f"img{i:02d}.png") for i in range(n)]
    return queue.add(SimpleNamespace(sample_id=name), name, paths)


def finish(queue: BatchQueue) -> None:
    """Join the batch thread, then deliver what it produced (the 100 ms timer's job)."""
    assert queue.wait(10)
    queue.drain()
    assert not queue.running


def record(signal) -> list:
    seen: list = []
    signal.connect(lambda *args: seen.append(args))
    return seen


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0:00"), (59.4, "0:59"), (61, "1:01"), (3600, "1:00:00"), (3725, "1:02:05")])
def test_format_eta_shows_minutes_and_seconds_and_hours_when_needed(seconds, text):
    assert format_eta(seconds) == text


def test_job_rate_and_eta_count_only_this_runs_images_while_running():
    job = BatchJob(SimpleNamespace(sample_id="S"), "S", ["a"] * 10, total=10, done=4, done_before=2, active_s=1.0)
    assert job.rate == 2.0 and job.eta_s is None  # queued: no ETA
    job.state = RUNNING
    assert (job.run_done, job.rate, job.remaining, job.eta_s) == (2, 2.0, 6, 3.0)
    assert job.fraction == pytest.approx(0.4)
    job.active_s = 0.1
    assert job.rate is None and job.eta_s is None  # too short to measure
    job.state = DONE
    assert job.fraction == 1.0
    assert BatchJob(object(), "store-id", []).label == "store-id"


def test_jobs_run_in_queue_order_and_each_jobs_results_arrive_in_one_signal(make_queue, store, tmp_path):
    host = FakeHost()
    q = make_queue(host)
    a, b = add_sample(q, store, tmp_path, "A", 3), add_sample(q, store, tmp_path, "B", 2)
    results, finished, running = record(q.results), record(q.job_finished), record(q.running_changed)
    models = record(q.model_ready)
    assert q.start()
    finish(q)
    assert host.classifier.calls == [a.paths, b.paths]
    assert [(job, [r.path for r in rs]) for job, rs in results] == [(a, a.paths), (b, b.paths)]
    assert [j for (j,) in finished] == [a, b]
    assert running == [(True,), (False,)]
    assert models[0][1] == "cpu (fake)"
    assert (a.state, a.message, b.state, b.message) == (DONE, "3 classified", DONE, "2 classified")
    assert q.totals() == (5, 5)
    assert store.pending_paths("A", SHA) == [] and len(store.predictions("B", SHA)) == 2


def test_adding_a_queued_sample_returns_its_job_and_a_finished_one_is_replaced_at_the_end(make_queue, store, tmp_path):
    q = make_queue(FakeHost())
    a = add_sample(q, store, tmp_path, "A", 1)
    b = add_sample(q, store, tmp_path, "B", 1)
    assert q.add(a.sample, "A", a.paths) is a and q.jobs == [a, b]
    a.state = DONE
    again = q.add(a.sample, "A", a.paths)
    assert again is not a and again.state == QUEUED and q.jobs == [b, again]
    q.clear_finished()
    assert q.jobs == [b, again]


def test_move_and_move_to_reorder_the_queue_within_its_bounds(make_queue, store, tmp_path):
    q = make_queue(FakeHost())
    a, b, c = (add_sample(q, store, tmp_path, name, 1) for name in "ABC")
    changed = record(q.changed)
    assert q.move(c, -1) and q.jobs == [a, c, b]
    assert not q.move(a, -1) and not q.move(b, +1)
    assert q.move_to(a, 99) and q.jobs == [c, b, a]  # clamped to the end
    assert not q.move_to(a, 2)
    assert q.move_to(a, -5) and q.jobs == [a, c, b]
    assert len(changed) == 3
    q.remove(b)
    assert not q.move(b, -1) and q.jobs == [a, c]


def test_cancel_keeps_the_committed_results_and_start_resumes_with_the_pending_images(qtbot, make_queue, store, tmp_path):
    host = FakeHost(FakeClassifier(gated=True))
    q = make_queue(host)
    a, b = add_sample(q, store, tmp_path, "A", 5), add_sample(q, store, tmp_path, "B", 1)
    q.start()
    host.classifier.allow(2)
    qtbot.waitUntil(lambda: a.done == 2, timeout=10000)
    q.cancel()
    finish(q)
    assert (a.state, a.message, a.done) == (CANCELLED, "Cancelled", 2)
    assert b.state == QUEUED  # the queue halted behind the cancelled job
    assert store.pending_paths("A", SHA) == a.paths[2:]
    host.classifier.allow(100)
    assert q.start()
    finish(q)
    assert host.classifier.calls[1] == a.paths[2:]
    assert (a.state, a.done_before, a.done, a.message) == (DONE, 2, 5, "3 classified")
    assert b.state == DONE and store.pending_paths("A", SHA) == []


def test_removing_the_running_job_cancels_it_and_the_next_one_runs(qtbot, make_queue, store, tmp_path):
    host = FakeHost(FakeClassifier(gated=True))
    q = make_queue(host)
    a, b = add_sample(q, store, tmp_path, "A", 5), add_sample(q, store, tmp_path, "B", 2)
    q.start()
    host.classifier.allow(2)  # one batch (the queue's batch size is 2): recorded together
    qtbot.waitUntil(lambda: a.done == 2, timeout=10000)
    q.remove(a)
    host.classifier.allow(100)
    finish(q)
    assert q.jobs == [b] and a.state == CANCELLED and b.state == DONE
    assert len(store.pending_paths("A", SHA)) == 3  # cancelled before the next image was let through


def test_pause_stops_new_results_until_resume(qtbot, make_queue, store, tmp_path):
    host = FakeHost(FakeClassifier(gated=True))
    q = make_queue(host)
    a = add_sample(q, store, tmp_path, "A", 6)
    q.start()
    host.classifier.allow(2)
    qtbot.waitUntil(lambda: a.done == 2, timeout=10000)
    q.pause()
    assert q.paused
    host.classifier.allow(100)  # the image in progress may finish, then the thread waits
    qtbot.waitUntil(lambda: a.done == 3, timeout=10000)
    qtbot.wait(300)
    assert a.done == 3 and a.state == RUNNING
    q.resume()
    assert not q.paused
    finish(q)
    assert a.state == DONE and a.done == 6


def test_a_model_that_cannot_load_fails_the_job_and_halts_the_queue(make_queue, store, tmp_path):
    q = make_queue(FakeHost(error=ModelError("model file missing")))
    a, b = add_sample(q, store, tmp_path, "A", 2), add_sample(q, store, tmp_path, "B", 2)
    failed = record(q.failed)
    q.start()
    finish(q)
    assert (a.state, a.message, b.state) == (FAILED, "model file missing", QUEUED)
    assert len(failed) == 1
    message, details = failed[0]
    assert message == "Sample A: model file missing" and "ModelError" in details


def test_the_job_is_planned_while_the_classifier_process_starts(make_queue, store, tmp_path):
    import time

    seen = {}

    def slow_start() -> None:  # the images get registered while the "process" is still starting
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not store.images("A"):
            time.sleep(0.01)
        seen["registered while loading"] = len(store.images("A"))

    q = make_queue(FakeHost(while_loading=slow_start))
    a = add_sample(q, store, tmp_path, "A", 3)
    q.start()
    finish(q)
    assert seen == {"registered while loading": 3}
    assert a.state == DONE and store.pending_paths("A", SHA) == []


@pytest.mark.parametrize("expected", [None, "cd" * 32], ids=["card unreadable", "another model loaded"])
def test_a_job_is_planned_for_the_model_that_actually_loaded(make_queue, store, tmp_path, expected):
    host = FakeHost(expected=expected)
    q = make_queue(host)
    a = add_sample(q, store, tmp_path, "A", 3)
    q.start()
    finish(q)
    assert a.state == DONE and host.classifier.calls == [a.paths]
    assert store.pending_paths("A", SHA) == [] and len(store.predictions("A", SHA)) == 3


def test_a_model_that_cannot_load_is_the_error_reported_even_when_planning_ran_beside_it(make_queue, store,
                                                                                        tmp_path):
    q = make_queue(FakeHost(error=ModelError("weights corrupt"), while_loading=lambda: None))
    a = add_sample(q, store, tmp_path, "A", 2)
    q.start()
    finish(q)
    assert (a.state, a.message) == (FAILED, "weights corrupt")
    assert store.pending_paths("A", SHA) == a.paths  # planned, nothing classified: a later run does them


def test_an_error_mid_stream_keeps_the_results_before_it(make_queue, store, tmp_path):
    host = FakeHost(FakeClassifier(fail_at=2))
    q = make_queue(host)
    a = add_sample(q, store, tmp_path, "A", 4)
    results, failed = record(q.results), record(q.failed)
    q.start()
    finish(q)
    assert a.state == FAILED and [r.path for _, rs in results for r in rs] == a.paths[:2]
    assert failed[0][0] == "Sample A: the model broke"
    assert store.pending_paths("A", SHA) == a.paths[2:]
    host.classifier = FakeClassifier()
    assert q.start()  # a failed job is queued again
    finish(q)
    assert a.state == DONE and host.classifier.calls == [a.paths[2:]]


def test_a_sample_signed_off_elsewhere_meanwhile_fails_its_job_and_keeps_the_sign_off(qtbot, make_queue, store,
                                                                                     tmp_path):
    from engine.core.records import ImageResult

    host = FakeHost(FakeClassifier(gated=True))
    q = make_queue(host)
    a = add_sample(q, store, tmp_path, "A", 3)
    failures = record(q.failed)
    q.start()
    host.classifier.allow(2)  # one batch (the queue's batch size is 2)
    qtbot.waitUntil(lambda: a.done == 2, timeout=10000)
    for path in a.paths:  # another workstation classifies it with another model and signs it off
        store.record_prediction("A", path, ImageResult(path, "ok", "Pro", 0.99), "other", "2", "e" * 64)
    store.sign_off("A", "dr. b", "I approve this report.")
    host.classifier.allow(100)
    finish(q)
    assert a.state == FAILED and "signed off while it was being classified" in a.message
    assert failures and "signed off" in failures[0][0]
    assert len(store.predictions("A", SHA)) == 2 and store.get_sample("A").signed_off


def test_an_unexpected_exception_is_reported_as_unexpected(make_queue, store, tmp_path):
    q = make_queue(FakeHost(FakeClassifier(fail_at=0, error=RuntimeError("boom"))))
    a = add_sample(q, store, tmp_path, "A", 1)
    failed = record(q.failed)
    q.start()
    finish(q)
    assert a.state == FAILED and a.message == "RuntimeError: boom"
    assert failed[0][0] == "Sample A: an unexpected error occurred: RuntimeError: boom"


def test_start_with_nothing_to_do_or_after_shutdown_starts_no_thread(make_queue, store, tmp_path):
    q = make_queue(FakeHost())
    assert not q.start() and not q.running
    add_sample(q, store, tmp_path, "A", 1)
    q.shutdown()
    assert not q.start() and not q.running


def test_a_job_started_just_after_the_previous_run_ended_still_runs(qtbot, make_queue, store, tmp_path):
    q = make_queue(FakeHost())
    add_sample(q, store, tmp_path, "A", 1)
    q.start()
    assert q.wait(10)  # the thread has ended; the timer has not drained its 'stopped' yet
    b = add_sample(q, store, tmp_path, "B", 1)
    assert q.start()
    qtbot.waitUntil(lambda: b.state == DONE, timeout=3000)
