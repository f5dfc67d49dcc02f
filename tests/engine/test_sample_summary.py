"""The sample-level summary and its research-use call rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.sample_summary import CALL_CODES, summarize
from engine.store import EXCLUDED_CLASS, ResultStore


def rec(cls=None, *, status="ok", review=None, needs_review=False, ood=False):
    """A PredictionRecord-like object (review=None: not reviewed)."""
    return SimpleNamespace(
        status=status, predicted_class=cls if status == "ok" else None, needs_review=needs_review,
        out_of_distribution=ood, reviewed=review is not None,
        final_class=review if review is not None else (cls if status == "ok" else None),
        overridden=review is not None and review != cls)


def many(**counts):
    return [rec(c) for c, k in counts.items() for _ in range(k)]


def test_no_images_or_no_ok_images_is_indeterminate():
    for records in ([], [rec(status="error"), rec(status="error")]):
        s = summarize(records)
        assert (s.call, s.call_code, s.n_classified) == ("Indeterminate", "INDETERMINATE", 0)
        assert s.fractions == {"Benign": 0.0, "Early": 0.0, "Pre": 0.0, "Pro": 0.0}
    s = summarize([rec(status="error"), rec("Pre", review=EXCLUDED_CLASS)])
    assert s.call == "Indeterminate" and "1 unreadable" in s.rationale and "1 excluded" in s.rationale


@pytest.mark.parametrize("counts, call, code", [
    ({"Pre": 6, "Benign": 4}, "ALL suspected: Pre-B ALL", "ALL_PRE"),
    ({"Early": 3, "Pro": 1, "Benign": 4}, "ALL suspected: Early pre-B ALL", "ALL_EARLY"),  # exactly 0.5
    ({"Pro": 10}, "ALL suspected: Pro-B ALL", "ALL_PRO"),
    ({"Pre": 3, "Early": 3, "Benign": 4}, "ALL suspected: mixed subtypes", "ALL_MIXED"),
    ({"Pre": 4, "Early": 3, "Benign": 3}, "ALL suspected: mixed subtypes", "ALL_MIXED"),  # 10 points: inclusive
    ({"Pre": 5, "Early": 3, "Benign": 2}, "ALL suspected: Pre-B ALL", "ALL_PRE"),  # 20 points apart
    ({"Benign": 8, "Pre": 2}, "No ALL pattern detected (hematogones)", "BENIGN"),  # exactly 0.8
    ({"Benign": 10}, "No ALL pattern detected (hematogones)", "BENIGN"),
    ({"Benign": 7, "Pre": 3}, "Indeterminate — review recommended", "INDETERMINATE"),
    ({"Benign": 11, "Pre": 5, "Early": 4}, "Indeterminate — review recommended", "INDETERMINATE"),  # 0.45 malignant
])
def test_call_rule(counts, call, code):
    s = summarize(many(**counts))
    assert (s.call, s.call_code) == (call, code)
    assert code in CALL_CODES and s.rationale
    n = sum(counts.values())
    assert s.n_classified == s.n_ok == s.n_images == n
    assert s.fractions["Benign"] == pytest.approx(counts.get("Benign", 0) / n)


def test_reviews_drive_the_final_counts_not_the_model_counts():
    records = [rec("Benign", review="Pre", needs_review=True) for _ in range(6)] + many(Benign=4)
    s = summarize(records)
    assert s.model_counts == {"Benign": 10, "Early": 0, "Pre": 0, "Pro": 0}
    assert s.counts == {"Benign": 4, "Early": 0, "Pre": 6, "Pro": 0}
    assert s.call_code == "ALL_PRE"
    assert (s.n_reviewed, s.n_overridden, s.n_needs_review, s.n_flagged_unreviewed) == (6, 6, 6, 0)


def test_errors_excluded_and_flags_are_counted():
    records = [*many(Benign=8), rec(status="error"), rec("Pre", ood=True, review=EXCLUDED_CLASS),
               rec("Pro", needs_review=True), rec("Benign", ood=True)]
    s = summarize(records)
    assert (s.n_images, s.n_ok, s.n_error, s.n_excluded, s.n_classified) == (12, 11, 1, 1, 10)
    assert s.counts["Benign"] == 9 and s.fractions["Benign"] == pytest.approx(0.9)
    assert s.call_code == "BENIGN"
    assert (s.n_ood, s.n_needs_review, s.n_flagged, s.n_reviewed) == (2, 1, 4, 1)
    assert s.n_flagged_unreviewed == 3 and "3 flagged image(s) not reviewed yet" in s.rationale
    assert s.to_dict()["call_code"] == "BENIGN"


def test_plain_inference_results_are_accepted():
    results = [SimpleNamespace(status="ok", predicted_class="Early", needs_review=False, out_of_distribution=False)
               for _ in range(3)]
    s = summarize(results)
    assert s.call_code == "ALL_EARLY" and s.n_reviewed == 0 and s.n_overridden == 0


def test_summarize_store_records(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(b"%d" % i)
        paths.append(p)
    with ResultStore.open(tmp_path / "s.sqlite3") as store:
        store.create_or_get_sample("S", tmp_path)
        for p, cls in zip(paths, ["Pre", "Pre", "Early", "Benign"]):
            r = SimpleNamespace(status="ok", predicted_class=cls, confidence=0.9, probabilities=None,
                                needs_review=False, out_of_distribution=False, ood_score=None, error=None)
            store.record_prediction("S", p, r, "m", "1", "d" * 64)
        store.record_review("S", paths[2], "Pre", "dr")
        s = summarize(store.predictions("S"))
    assert s.counts["Pre"] == 3 and s.model_counts["Early"] == 1 and s.n_overridden == 1
    assert s.call == "ALL suspected: Pre-B ALL"
