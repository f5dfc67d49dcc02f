"""Flag reason codes: one sentence per code, the CSV/store form, the rules, old free text."""

from __future__ import annotations

import re

import pytest

from engine.core.flags import (
    LABELS,
    ORDER,
    SENTENCES,
    FlagReason,
    codes_from_legacy,
    describe,
    format_codes,
    is_out_of_distribution,
    labels,
    parse_codes,
    withholds_call,
)


def test_every_code_has_a_plain_sentence_and_a_label_without_numbers():
    assert set(SENTENCES) == set(LABELS) == set(FlagReason) == set(ORDER)
    assert {str(r) for r in FlagReason} >= {"no_white_cell", "unlike_training", "out_of_focus", "blank",
                                            "grayscale", "low_confidence"}
    for r in FlagReason:
        assert r.sentence and r.label and not re.search(r"\d", r.sentence + r.label)
        assert r.sentence[0].isupper() and not r.sentence.endswith(".")
    assert FlagReason.UNLIKE_TRAINING.sentence == ("Unlike the images the model was trained on "
                                                   "(stain, camera or magnification)")


def test_codes_round_trip_in_display_order():
    text = format_codes(["low_confidence", FlagReason.UNLIKE_TRAINING, "no_white_cell", "no_white_cell"])
    assert text == "no_white_cell;unlike_training;low_confidence"
    assert parse_codes(text) == (FlagReason.NO_WHITE_CELL, FlagReason.UNLIKE_TRAINING, FlagReason.LOW_CONFIDENCE)
    assert parse_codes("") == parse_codes(None) == () and format_codes([]) == ""
    with pytest.raises(ValueError, match="sparkles"):
        parse_codes("blank;sparkles")
    assert describe(["grayscale", "blank"]) == f"{FlagReason.BLANK.sentence}. {FlagReason.GRAYSCALE.sentence}."
    assert describe([]) == "" and labels(["unlike_training", "blank"]) == "blank, unlike training"


def test_only_low_confidence_leaves_the_call_to_the_model():
    assert not withholds_call([]) and not withholds_call([FlagReason.LOW_CONFIDENCE])
    for r in set(FlagReason) - {FlagReason.LOW_CONFIDENCE}:
        assert withholds_call([r]) and is_out_of_distribution([r, FlagReason.LOW_CONFIDENCE])


@pytest.mark.parametrize("text, needs_review, ood, expected", [
    ("feature distance 412.3 above 333.7", True, True, ["unlike_training"]),
    ("near-blank image; grayscale image (no stain colour)", True, True, ["blank", "grayscale"]),
    ("out of focus (sharpness 12, in-focus smears 35 or more)", True, True, ["out_of_focus"]),
    ("feature distance 9.0 above 1.0; out of focus (sharpness 2, in-focus smears 35 or more)", True, True,
     ["out_of_focus", "unlike_training"]),
    ("", True, False, ["low_confidence"]),
    ("", False, False, []),
    ("", True, True, ["unlike_training"]),          # out of distribution, reason not kept
    ("something new", True, True, ["unlike_training"]),
])
def test_codes_from_the_old_free_text(text, needs_review, ood, expected):
    assert codes_from_legacy(text, needs_review=needs_review, out_of_distribution=ood) == parse_codes(
        ";".join(expected))

