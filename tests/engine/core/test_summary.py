"""The sample-level summary and its research-use call rule."""

from __future__ import annotations

import pytest

from engine.core.flags import FlagReason
from engine.core.records import EXCLUDED_CLASS, ImageResult, ReviewedImage
from engine.core.summary import (
    ACQUISITION_MAX_SHARE,
    ACQUISITION_WARNING,
    CALL_CODES,
    CALL_INDETERMINATE_ACQUISITION,
    summarize,
)
from engine.store.results import ResultStore


def rec(cls=None, *, status="ok", review=None, needs_review=False, ood=False, flags=()):
    """One image of a sample (review=None: not reviewed)."""
    return ReviewedImage("/s/x.jpg", status, cls if status == "ok" else None, needs_review=needs_review,
                         out_of_distribution=ood, flags=tuple(FlagReason(f) for f in flags), final_class=review,
                         reviewed_by="R" if review is not None else None)


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
    # the unreviewed out-of-distribution Benign is withheld: counted in no class
    assert (s.n_images, s.n_ok, s.n_error, s.n_excluded, s.n_classified, s.n_withheld) == (12, 11, 1, 1, 9, 1)
    assert s.counts["Benign"] == 8 and s.fractions["Benign"] == pytest.approx(8 / 9)
    assert s.call_code == "BENIGN"
    assert (s.n_ood, s.n_needs_review, s.n_flagged, s.n_reviewed) == (2, 1, 4, 1)
    assert s.n_flagged_unreviewed == 3 and "3 flagged image(s) not reviewed yet" in s.rationale
    assert s.to_dict()["call_code"] == "BENIGN"


def test_plain_inference_results_are_accepted():
    results = [ImageResult(f"/s/{i}.jpg", "ok", "Early", 0.9) for i in range(3)]
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
        for p, cls in zip(paths, ["Pre", "Pre", "Early", "Benign"], strict=False):
            r = ImageResult(str(p), "ok", cls, 0.9)
            store.record_prediction("S", p, r, "m", "1", "d" * 64)
        store.record_review("S", paths[2], "Pre", "dr")
        s = summarize(store.predictions("S"))
    assert s.counts["Pre"] == 3 and s.model_counts["Early"] == 1 and s.n_overridden == 1
    assert s.call == "ALL suspected: Pre-B ALL"


# ------------------------------------------------------------------ flags and withheld images
@pytest.mark.parametrize("code", ["no_white_cell", "blank", "grayscale", "out_of_focus", "unlike_training"])
def test_an_image_the_model_cannot_judge_is_not_counted_until_reviewed(code):
    # 7 Benign + one such image the model calls Pro: were it counted, 1 of 8 malignant would be
    # 12.5 % and Benign 87.5 % (still BENIGN) — so check the counts, and a sample where it decides.
    flagged = rec("Pro", flags=[code])
    s = summarize([*many(Benign=7), flagged])
    assert s.counts == {"Benign": 7, "Early": 0, "Pre": 0, "Pro": 0} and s.n_classified == 7
    assert s.n_withheld == 1 and s.model_counts["Pro"] == 1 and s.n_flagged_unreviewed == 1
    assert "not counted" in s.rationale
    # alone, it gives no call at all (not "ALL suspected: Pro-B ALL")
    alone = summarize([rec("Pro", flags=[code])])
    expected = "INDETERMINATE_ACQUISITION" if code == "unlike_training" else "INDETERMINATE"
    assert (alone.call_code, alone.n_classified, alone.n_withheld) == (expected, 0, 1)
    assert "ALL suspected" not in alone.call
    # once a person has reviewed it, the reviewer's class counts
    reviewed = summarize([*many(Benign=7), rec("Pro", flags=[code], review="Pre")])
    assert reviewed.counts["Pre"] == 1 and reviewed.n_withheld == 0 and reviewed.n_classified == 8


def test_a_no_white_cell_field_does_not_make_the_call():
    # 1 Benign + 1 Pro: 50 % malignant would be "ALL suspected"; the Pro field has no white cell.
    s = summarize([rec("Benign"), rec("Pro", flags=["no_white_cell"])])
    assert s.counts["Pro"] == 0 and s.n_withheld == 1
    assert s.call_code == "BENIGN" and s.acquisition_warning is None
    # low confidence alone does not withhold: the model can judge the image, it is just unsure
    s = summarize([rec("Benign"), rec("Pro", flags=["low_confidence"])])
    assert s.counts["Pro"] == 1 and s.n_withheld == 0 and s.call_code == "ALL_PRO"


def test_a_record_without_codes_but_out_of_distribution_is_withheld():
    s = summarize([rec("Benign"), rec("Pro", ood=True)])
    assert s.counts["Pro"] == 0 and s.n_withheld == 1


def test_acquisition_share_is_a_quarter():
    assert ACQUISITION_MAX_SHARE == (1, 4)
    assert "INDETERMINATE_ACQUISITION" in CALL_CODES


@pytest.mark.parametrize("n_unlike, n_other, fires", [
    (1, 3, True),     # exactly 25 %
    (2, 6, True),     # exactly 25 %
    (5, 15, True),    # exactly 25 %
    (1, 4, False),    # 20 %
    (4, 13, False),   # 23.5 %: just below
    (5, 16, False),   # 23.8 %: just below
    (0, 10, False),
    (3, 0, True),
])
def test_acquisition_warning_fires_at_the_threshold_and_not_below(n_unlike, n_other, fires):
    # The other images are a clear Pre-B ALL pattern, so a call would be given without the check.
    records = [rec("Pre", flags=["unlike_training"]) for _ in range(n_unlike)] + many(Pre=n_other)
    s = summarize(records)
    assert s.n_unlike_training == n_unlike
    if fires:
        assert s.acquisition_warning == ACQUISITION_WARNING
        assert s.acquisition_warning == "The model has not been validated on images like these"
        assert (s.call, s.call_code) == (CALL_INDETERMINATE_ACQUISITION, "INDETERMINATE_ACQUISITION")
        assert s.call == "Indeterminate — images unlike the validated set"
        assert f"{n_unlike} of {n_unlike + n_other}" in s.rationale
    else:
        assert s.acquisition_warning is None
        assert s.call_code == "ALL_PRE"
    assert s.to_dict()["acquisition_warning"] == s.acquisition_warning


def test_acquisition_check_counts_reviewed_images_but_not_excluded_ones():
    # reviewing an unlike-training image confirms its class, not that the model fits the sample
    reviewed = [rec("Pre", flags=["unlike_training"], review="Pre")] + many(Pre=3)
    s = summarize(reviewed)
    assert s.acquisition_warning == ACQUISITION_WARNING and s.call_code == "INDETERMINATE_ACQUISITION"
    assert s.counts["Pre"] == 4  # the counts still show the reviewer's classes
    # an image a reviewer excluded is no longer part of the sample
    excluded = [rec("Pre", flags=["unlike_training"], review=EXCLUDED_CLASS)] + many(Pre=3)
    s = summarize(excluded)
    assert s.acquisition_warning is None and s.call_code == "ALL_PRE" and s.n_unlike_training == 0
    # other reasons (no white cell, blank...) are not an acquisition problem
    s = summarize([rec("Pre", flags=["no_white_cell"]), rec("Pre", flags=["blank"]), *many(Pre=2)])
    assert s.acquisition_warning is None and s.call_code == "ALL_PRE" and s.n_withheld == 2


# ------------------------------------------------------------------ counts that add up
def _ri(i: int, status: str = "ok", cls: str | None = "Pre", **fields):
    from engine.core.records import ReviewedImage

    return ReviewedImage(f"/s/img{i:02d}.png", status, cls if status == "ok" else None,
                         0.9 if status == "ok" else None, error="cannot decode" if status == "error" else None,
                         **fields)


def test_every_image_is_counted_once_and_the_counts_add_up():
    from engine.core.flags import FlagReason
    from engine.core.records import EXCLUDED_CLASS

    records = [
        _ri(0), _ri(1), _ri(2, cls="Benign"),                          # counted
        _ri(3, flags=(FlagReason.NO_WHITE_CELL,)),                     # withheld: cannot be judged
        _ri(4, final_class=EXCLUDED_CLASS, reviewed_by="dr"),          # a readable image excluded
        _ri(5, "error", final_class=EXCLUDED_CLASS, reviewed_by="dr"),  # a broken file excluded
        _ri(6, "error"),                                               # unreadable, not excluded yet
        _ri(7, "pending"),                                             # not classified yet
    ]
    s = summarize(records, n_images=10)  # and two more images without any record yet
    assert (s.n_classified, s.n_withheld, s.n_excluded, s.n_error, s.n_pending) == (3, 1, 2, 1, 3)
    assert s.n_images == 10 == s.n_classified + s.n_withheld + s.n_excluded + s.n_error + s.n_pending
    assert s.n_ok == 5 and not s.complete


def test_a_half_classified_sample_gets_no_call_whatever_its_counts():
    s = summarize([_ri(i, cls="Pro") for i in range(6)], n_images=10)
    assert s.call_code == "INCOMPLETE" and s.call.startswith("Incomplete")
    assert "4 of 10 images are not classified yet" in s.rationale and s.counts["Pro"] == 6
    done = summarize([_ri(i, cls="Pro") for i in range(10)], n_images=10)
    assert done.complete and done.call_code == "ALL_PRO"
    assert summarize([_ri(0, "pending")]).call_code == "INCOMPLETE"  # a pending record alone, too


def test_a_broken_file_excluded_by_review_shows_as_excluded_not_as_unreadable():
    from engine.core.records import EXCLUDED_CLASS

    s = summarize([_ri(0, cls="Benign"), _ri(1, "error", final_class=EXCLUDED_CLASS, reviewed_by="dr")])
    assert (s.n_excluded, s.n_error, s.n_classified, s.call_code) == (1, 0, 1, "BENIGN")
