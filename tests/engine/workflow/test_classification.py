"""The classification service both front ends use: plan a sample, classify what is missing,
commit each result before yielding it, resume after a crash, refuse a signed-off sample."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from engine.core.errors import AllSightError, Cancelled
from engine.core.progress import CancelToken
from engine.core.records import ImageResult, ImageStatus
from engine.store.results import ResultStore
from engine.workflow.classification import classify_samples, prepare_sample

CARD = SimpleNamespace(id="fake", version="1.0.0", weights_sha256="f" * 64)


class ListClassifier:
    """Calls every image "Pre"; ``crash_after`` makes the run die like a killed process."""

    def __init__(self, crash_after: int | None = None, fail: Iterable[str] = ()):
        self.card = CARD
        self.crash_after = crash_after
        self.fail = {Path(p).name for p in fail}
        self.asked: list[list[str]] = []
        self.closed = False

    def classify_paths(self, paths, *, batch_size=64, workers=2, cancel=None) -> Iterator[ImageResult]:
        paths = [str(p) for p in paths]
        self.asked.append(paths)
        try:
            for i, path in enumerate(paths):
                if self.crash_after is not None and i == self.crash_after:
                    raise RuntimeError("the classifier died")
                if Path(path).name in self.fail:
                    yield ImageResult(path, ImageStatus.ERROR, error="cannot decode")
                else:
                    yield ImageResult(path, ImageStatus.OK, "Pre", 0.97, {"Pre": 0.97})
        finally:
            self.closed = True


def make_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:02d}.png"
        assert cv2.imwrite(str(path), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def store(tmp_path):
    with ResultStore.open(tmp_path / "results.db") as s:
        yield s


def registered(store: ResultStore, folder: Path, n: int) -> tuple[str, list[Path]]:
    paths = make_images(folder, n)
    sample, _ = store.register_sample(folder.name, str(folder), operator="ana")
    return sample.sample_id, paths


def test_every_result_is_committed_before_it_is_yielded_a_batch_at_a_time(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-1", 5)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    assert (plan.total, plan.done_before, len(plan.pending)) == (5, 0, 5)
    seen, stored = [], []
    for event in classify_samples(store, ListClassifier(), [plan], batch_size=2):
        seen.append((event.done, event.total, event.recorded))
        stored.append(len(store.predictions(sid, CARD.weights_sha256)))  # already durable
    assert seen == [(1, 5, True), (2, 5, True), (3, 5, True), (4, 5, True), (5, 5, True)]
    assert stored == [2, 2, 4, 4, 5]  # each batch of two in one transaction, the last one alone
    audit = [a.action for a in store.audit(sid)]
    assert audit.count("record_prediction") == 5 and store.verify_audit().ok  # an entry per result still


def test_a_cancel_records_the_results_in_hand_before_it_stops(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-1c", 6)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    token = CancelToken()
    done = []
    with pytest.raises(Cancelled):
        for event in classify_samples(store, ListClassifier(), [plan], batch_size=4, cancel=token):
            done.append(event.done)
            if event.done == 1:
                token.cancel()  # the first batch of four is already recorded; nothing more is classified
    assert done == [1, 2, 3, 4]
    assert len(store.predictions(sid, CARD.weights_sha256)) == 4


def test_a_run_after_a_crash_classifies_only_what_is_missing(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-2", 5)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    with pytest.raises(RuntimeError, match="died"):
        list(classify_samples(store, ListClassifier(crash_after=2), [plan]))
    assert len(store.predictions(sid, CARD.weights_sha256)) == 2  # nothing committed is lost

    again = prepare_sample(store, sid, paths, CARD.weights_sha256)
    assert again.done_before == 2 and [Path(p).name for p in again.pending] == ["img_02.png", "img_03.png",
                                                                              "img_04.png"]
    classifier = ListClassifier()
    events = list(classify_samples(store, classifier, [again]))
    assert [e.done for e in events] == [3, 4, 5] and all(e.recorded for e in events)
    assert len(classifier.asked[0]) == 3


def test_stored_results_are_read_back_with_the_callers_spelling(store, tmp_path, monkeypatch):
    sid, paths = registered(store, tmp_path / "S-3", 2)
    list(classify_samples(store, ListClassifier(), [prepare_sample(store, sid, paths, CARD.weights_sha256)]))
    monkeypatch.chdir(tmp_path)
    relative = [Path("S-3") / p.name for p in paths]
    plan = prepare_sample(store, sid, relative, CARD.weights_sha256)
    assert plan.pending == () and len(plan.stored) == 2
    stored = plan.stored[str(paths[0])]
    assert stored.as_result(relative[0]).path == str(relative[0]) and stored.predicted_class == "Pre"


def test_failed_images_are_recorded_and_counted(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-4", 3)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    events = list(classify_samples(store, ListClassifier(fail=["img_01.png"]), [plan]))
    assert [e.failed for e in events] == [False, True, False]
    assert [r.status for r in store.predictions(sid, CARD.weights_sha256)] == ["ok", "error", "ok"]


def test_an_order_across_samples_is_kept_and_each_result_goes_to_its_sample(store, tmp_path):
    a, pa = registered(store, tmp_path / "A", 2)
    b, pb = registered(store, tmp_path / "B", 2)
    plans = [prepare_sample(store, a, pa, CARD.weights_sha256), prepare_sample(store, b, pb, CARD.weights_sha256)]
    order = [pb[0], pa[0], pb[1], pa[1]]
    events = list(classify_samples(store, ListClassifier(), plans, order=order))
    assert [(e.sample_id, Path(e.result.path)) for e in events] == [(b, pb[0]), (a, pa[0]), (b, pb[1]), (a, pa[1])]
    assert len(store.predictions(a)) == len(store.predictions(b)) == 2


def test_an_image_not_waiting_in_any_plan_is_refused_before_classifying(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-5", 1)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    classifier = ListClassifier()
    with pytest.raises(AllSightError, match="not waiting to be classified"):
        next(classify_samples(store, classifier, [plan], order=[tmp_path / "other.png"]))
    assert classifier.asked == []


def test_cancel_stops_between_results_and_closes_the_classifier(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-6", 4)
    cancel = CancelToken()
    classifier = ListClassifier()
    events = classify_samples(store, classifier, [prepare_sample(store, sid, paths, CARD.weights_sha256)],
                              cancel=cancel, batch_size=1)
    next(events)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(events)
    assert classifier.closed and len(store.predictions(sid)) == 1


def test_a_signed_off_sample_is_not_changed(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-7", 2)
    list(classify_samples(store, ListClassifier(), [prepare_sample(store, sid, paths, CARD.weights_sha256)]))
    store.sign_off(sid, "dr. b", "I approve this report.")
    extra = make_images(tmp_path / "S-7" / "more", 1)
    plan = prepare_sample(store, sid, [*paths, *extra], CARD.weights_sha256)
    assert plan.signed_off and plan.pending == () and plan.refused == {str(extra[0])}
    assert "signed off" in plan.refusal(str(extra[0])) and len(store.images(sid)) == 2  # nothing added


def test_a_sample_signed_off_during_the_run_keeps_its_results(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-8", 3)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    events = classify_samples(store, ListClassifier(), [plan], batch_size=1)
    first = next(events)
    for path in paths:  # another workstation classifies it with another model and signs it off
        store.record_prediction(sid, path, ImageResult(str(path), ImageStatus.OK, "Pro", 0.99), "other", "2",
                                "e" * 64)
    store.sign_off(sid, "dr. b", "I approve this report.")
    rest = list(events)
    assert first.recorded and not any(e.recorded for e in rest)
    assert [e.done for e in rest] == [2, 3] and all("signed off" in e.refusal for e in rest)
    assert len(store.predictions(sid, CARD.weights_sha256)) == 1


def test_an_unregistered_sample_is_a_clear_error(store, tmp_path):
    with pytest.raises(AllSightError, match="not in the result store"):
        prepare_sample(store, "nobody", [], CARD.weights_sha256)


# ------------------------------------------------------------------------------- files that change
def replace_file(path: Path, data: bytes) -> None:
    """New content with the mtime moved on explicitly (a coarse clock must not hide the change)."""
    before = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_replaced_file_is_classified_again(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-9", 3)
    list(classify_samples(store, ListClassifier(), [prepare_sample(store, sid, paths, CARD.weights_sha256)]))
    replace_file(paths[1], b"not the image that was classified")

    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    assert plan.pending == (str(paths[1]),) and plan.done_before == 2
    assert set(plan.stored) == {str(paths[0]), str(paths[2])}  # only the unchanged files are reused
    classifier = ListClassifier(fail=[paths[1].name])
    events = list(classify_samples(store, classifier, [plan]))
    assert classifier.asked == [[str(paths[1])]] and [e.recorded for e in events] == [True]
    now = {Path(r.path).name: r for r in store.predictions(sid, CARD.weights_sha256)}
    assert now["img_01.png"].status == "error"  # the new content's result, not the old "Pre"
    assert [a.action for a in store.audit(sid)].count("image_changed") == 1


def test_an_error_result_is_retried_on_the_next_run(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-10", 3)
    first = prepare_sample(store, sid, paths, CARD.weights_sha256)
    list(classify_samples(store, ListClassifier(fail=["img_02.png"]), [first]))  # e.g. still being copied

    again = prepare_sample(store, sid, paths, CARD.weights_sha256)
    assert again.pending == (str(paths[2]),) and again.done_before == 2
    assert str(paths[2]) not in again.stored  # the error is not reused
    classifier = ListClassifier()
    events = list(classify_samples(store, classifier, [again]))
    assert classifier.asked == [[str(paths[2])]]
    assert [(e.done, e.total, e.recorded, e.failed) for e in events] == [(3, 3, True, False)]
    assert [r.status for r in store.predictions(sid, CARD.weights_sha256)] == ["ok", "ok", "ok"]
    assert prepare_sample(store, sid, paths, CARD.weights_sha256).pending == ()  # nothing left


class ReplacingClassifier(ListClassifier):
    """Replaces each file just after it was classified, before its result is recorded."""

    def classify_paths(self, paths, **kw):
        for result in super().classify_paths(paths, **kw):
            replace_file(Path(result.path), b"replaced while the run was going")
            yield result


def test_a_result_belongs_to_the_content_it_was_planned_with(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-11", 1)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    planned = plan.content[str(paths[0])]
    assert planned is not None
    list(classify_samples(store, ReplacingClassifier(), [plan]))
    [stored] = store.predictions(sid, CARD.weights_sha256)
    assert stored.image_sha256 == planned
    # the next run notices the new content and classifies it
    assert prepare_sample(store, sid, paths, CARD.weights_sha256).pending == (str(paths[0]),)


def test_a_signed_off_sample_reports_its_changed_files_and_keeps_its_results(store, tmp_path):
    sid, paths = registered(store, tmp_path / "S-12", 2)
    list(classify_samples(store, ListClassifier(), [prepare_sample(store, sid, paths, CARD.weights_sha256)]))
    store.sign_off(sid, "dr. b", "I approve this report.")
    replace_file(paths[0], b"swapped after the sign-off")
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    assert plan.signed_off and plan.pending == () and plan.changed == (str(paths[0]),)
    assert set(plan.stored) == {str(p) for p in paths}  # the signed-off results, as signed
    assert "image_changed" not in [a.action for a in store.audit(sid)]


def test_a_sample_another_workstation_is_classifying_is_refused_and_the_lease_is_given_back(store, tmp_path):
    from engine.store.leases import SampleBusyError

    sid, paths = registered(store, tmp_path / "S-9", 3)
    plan = prepare_sample(store, sid, paths, CARD.weights_sha256)
    with ResultStore.open(store.path) as other_desk:
        held = other_desk.leases.acquire(sid, "rita")
        classifier = ListClassifier()
        with pytest.raises(SampleBusyError, match="rita"):
            list(classify_samples(store, classifier, [plan], actor="tom"))
        assert store.predictions(sid, CARD.weights_sha256) == [] and classifier.asked == []
        other_desk.leases.release(held)
    events = list(classify_samples(store, ListClassifier(), [plan], actor="tom"))
    assert len(events) == 3 and store.leases.holder(sid) is None  # released at the end
