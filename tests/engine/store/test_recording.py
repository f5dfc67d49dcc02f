"""engine.store.recording: a batch of a sample's results in one transaction, on both engines —
the same rows, flags and audit entries as one result at a time, idempotent, all or nothing."""

from __future__ import annotations

import pytest

from engine.store.results import NewPrediction, ResultStore, SignOffError
from tests.conftest import fake_image_files
from tests.engine.store.conftest import raw
from tests.engine.store.test_results import SHA_A, result


@pytest.fixture
def store(store_target):
    with ResultStore.open(store_target) as s:
        yield s


@pytest.fixture
def images(tmp_path):
    return fake_image_files(tmp_path / "patient1", 6)


def registered(store, images, n_added: int):
    sample, _ = store.register_sample("S", str(images[0].parent), operator="ana")
    store.add_images("S", [str(p) for p in images[:n_added]])
    return sample


def test_a_batch_records_each_result_with_its_own_chained_audit_entry(store, images):
    registered(store, images, 4)  # two of the six are new to the sample: added, hashed, in order
    classes = ["Pre", "Pro", "Early", "Benign", "Pre", "Pro"]
    items = [NewPrediction(str(p), result(p, cls)) for p, cls in zip(images, classes, strict=True)]
    assert store.record_predictions("S", items, "m", "1", SHA_A, actor="ana") == [True] * 6
    stored = {r.path: r.predicted_class for r in store.predictions("S", SHA_A)}
    assert stored == {str(p): cls for p, cls in zip(images, classes, strict=True)}
    assert [im.path for im in store.images("S")] == [str(p) for p in images]  # the new ones at the end
    actions = [a.action for a in store.audit("S")]
    assert actions.count("record_prediction") == 6 and actions.count("add_images") == 2
    assert store.verify_audit().ok
    assert store.pending_paths("S", SHA_A) == []


def test_a_batch_is_idempotent_and_a_repeat_within_it_counts_once(store, images):
    registered(store, images, 6)
    first = [NewPrediction(str(images[0]), result(images[0])), NewPrediction(str(images[1]), result(images[1]))]
    assert store.record_predictions("S", first, "m", "1", SHA_A) == [True, True]
    again = [NewPrediction(str(images[1]), result(images[1])), NewPrediction(str(images[2]), result(images[2])),
             NewPrediction(str(images[2]), result(images[2], "Pro"))]
    assert store.record_predictions("S", again, "m", "1", SHA_A) == [False, True, False]
    with raw(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 3
    assert sum(a.action == "record_prediction" for a in store.audit("S")) == 3
    assert store.record_predictions("S", first, "m", "1", SHA_A) == [False, False]  # nothing new: nothing written
    assert store.record_predictions("S", [], "m", "1", SHA_A) == []


def test_an_error_result_is_recorded_and_retried_by_a_later_ok_one(store, images):
    registered(store, images, 2)
    p = str(images[0])
    assert store.record_predictions("S", [NewPrediction(p, result(p, status="error"))], "m", "1", SHA_A) == [True]
    assert store.pending_paths("S", SHA_A) == [p, str(images[1])]
    assert store.record_predictions("S", [NewPrediction(p, result(p))], "m", "1", SHA_A) == [True]
    assert store.pending_paths("S", SHA_A) == [str(images[1])]


def test_a_batch_for_a_signed_off_sample_is_refused_whole(store, images):
    registered(store, images, 3)
    store.record_predictions("S", [NewPrediction(str(p), result(p)) for p in images[:3]], "m", "1", SHA_A)
    for r in store.predictions("S", SHA_A):
        store.record_review("S", r.path, "Pre", "rita")
    store.sign_off("S", "rita", "checked")
    with pytest.raises(SignOffError):
        store.record_predictions("S", [NewPrediction(str(images[3]), result(images[3]))], "m", "1", SHA_A)
    # Results it has already are no change, so no refusal.
    assert store.record_predictions("S", [NewPrediction(str(images[0]), result(images[0]))], "m", "1",
                                    SHA_A) == [False]
    assert len(store.images("S")) == 3


def test_a_bad_result_in_a_batch_writes_nothing_of_it(store, images):
    registered(store, images, 3)
    items = [NewPrediction(str(images[0]), result(images[0])), NewPrediction(str(images[1]), result(images[1], "Weird"))]
    with pytest.raises(Exception, match="unknown predicted class"):
        store.record_predictions("S", items, "m", "1", SHA_A)
    assert store.predictions("S", SHA_A) == []
    assert store.verify_audit().ok
