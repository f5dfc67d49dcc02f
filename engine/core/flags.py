"""Why an image is flagged: machine-readable reason codes, one plain sentence per code.

Every flag an image can carry is a :class:`FlagReason`. The codes are what the CSV, the JSON and
the store record; the sentences are what a technician reads (GUI, PDF). Feature-distance numbers
never reach a person: they stay in the JSON (``ood_score``).

Two rules live here and nowhere else:

* :func:`is_out_of_distribution` — the reasons that mean "the model cannot judge this image"
  (everything except low confidence);
* :func:`withholds_call` — the reasons whose image's model class is **not counted** in the
  sample's call until a person has reviewed it (then the reviewer's class counts).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class FlagReason(StrEnum):
    """A reason code. The value is the stable code written to CSV, JSON and the store."""

    NO_WHITE_CELL = "no_white_cell"
    BLANK = "blank"
    GRAYSCALE = "grayscale"
    OUT_OF_FOCUS = "out_of_focus"
    UNLIKE_TRAINING = "unlike_training"
    LOW_CONFIDENCE = "low_confidence"

    @property
    def sentence(self) -> str:
        """The one plain-language sentence a person reads for this code."""
        return SENTENCES[self]

    @property
    def label(self) -> str:
        """A few words for narrow table columns (the sentence says it in full)."""
        return LABELS[self]


SENTENCES: dict[FlagReason, str] = {
    FlagReason.NO_WHITE_CELL: "No white cell found in this field: there is nothing the model can judge",
    FlagReason.BLANK: "The image is blank or nearly uniform",
    FlagReason.GRAYSCALE: "The image has no stain colour (grayscale)",
    FlagReason.OUT_OF_FOCUS: "The image is out of focus",
    FlagReason.UNLIKE_TRAINING: ("Unlike the images the model was trained on "
                                 "(stain, camera or magnification)"),
    FlagReason.LOW_CONFIDENCE: "The model is not confident about this image",
}

#: A few words per code, for narrow columns (PDF Flags column, GUI table).
LABELS: dict[FlagReason, str] = {
    FlagReason.NO_WHITE_CELL: "no white cell",
    FlagReason.BLANK: "blank",
    FlagReason.GRAYSCALE: "grayscale",
    FlagReason.OUT_OF_FOCUS: "out of focus",
    FlagReason.UNLIKE_TRAINING: "unlike training",
    FlagReason.LOW_CONFIDENCE: "low confidence",
}

#: Display order (the most fundamental reason first).
ORDER: tuple[FlagReason, ...] = tuple(FlagReason)

#: Reasons whose image's model class does not count in the sample's call until reviewed.
_WITHHOLDING = frozenset(FlagReason) - {FlagReason.LOW_CONFIDENCE}


def normalize(reasons: Iterable[FlagReason | str]) -> tuple[FlagReason, ...]:
    """Unique reasons in :data:`ORDER`; unknown codes raise ``ValueError`` naming the code."""
    # Called for every record whenever a sample is summarised (the GUI does so on each batch of
    # results), so members pass without a conversion and the usual 0 or 1 reason skips the sort.
    seen = set()
    for r in reasons:
        if type(r) is not FlagReason:
            try:
                r = FlagReason(r)
            except ValueError:
                raise ValueError(f"unknown flag reason code {r!r}; known: {', '.join(ORDER)}") from None
        seen.add(r)
    if len(seen) <= 1:
        return tuple(seen)
    return tuple(r for r in ORDER if r in seen)


def parse_codes(text: str | None) -> tuple[FlagReason, ...]:
    """``"no_white_cell;unlike_training"`` (the CSV/store form) -> reasons; "" -> ()."""
    if not text:
        return ()
    return normalize(part.strip() for part in text.split(";") if part.strip())


def format_codes(reasons: Iterable[FlagReason | str]) -> str:
    """The CSV/store form: codes joined by ``;`` in :data:`ORDER`."""
    return ";".join(normalize(reasons))


def describe(reasons: Iterable[FlagReason | str]) -> str:
    """Sentences for people, joined by ``". "``, with a final full stop ("" for no reason)."""
    sentences = [r.sentence for r in normalize(reasons)]
    return ". ".join(sentences) + "." if sentences else ""


def labels(reasons: Iterable[FlagReason | str]) -> str:
    """The short labels joined by ``", "`` ("" for no reason)."""
    return ", ".join(r.label for r in normalize(reasons))


#: How the free-text ``ood_reason`` written before reason codes (result store schema 1, report
#: JSON without ``flags``) named each reason: the start of each ``"; "``-separated part.
_LEGACY_PREFIXES: tuple[tuple[str, FlagReason], ...] = (
    ("feature distance", FlagReason.UNLIKE_TRAINING),
    ("near-blank", FlagReason.BLANK),
    ("grayscale", FlagReason.GRAYSCALE),
    ("out of focus", FlagReason.OUT_OF_FOCUS),
)


def codes_from_legacy(ood_reason: str | None, *, needs_review: bool = False,
                      out_of_distribution: bool = False) -> tuple[FlagReason, ...]:
    """Reason codes for a result stored before codes existed (free-text ``ood_reason``).

    "feature distance ..." -> unlike_training, "near-blank ..." -> blank, "grayscale ..." ->
    grayscale, "out of focus ..." -> out_of_focus. An out-of-distribution result whose text names
    none of these (or has none) gets unlike_training, so it keeps withholding its call; a result
    that needed review without being out of distribution was low confidence (the only other
    reason the old rule had).
    """
    found = []
    for part in (p.strip().lower() for p in (ood_reason or "").split(";")):
        for prefix, code in _LEGACY_PREFIXES:
            if part.startswith(prefix):
                found.append(code)
    if out_of_distribution and not found:
        found.append(FlagReason.UNLIKE_TRAINING)
    if needs_review and not out_of_distribution:
        found.append(FlagReason.LOW_CONFIDENCE)
    return normalize(found)


def is_out_of_distribution(reasons: Iterable[FlagReason | str]) -> bool:
    """True when any reason says the image is beyond what the model can judge."""
    # A StrEnum member equals (and hashes as) its code, so codes and members test alike without
    # converting each one: the GUI's table asks this for every visible row on every repaint.
    return any(r in _WITHHOLDING for r in reasons)


def withholds_call(reasons: Iterable[FlagReason | str]) -> bool:
    """True when the image's *model* class must not count in the sample's call (unreviewed)."""
    return is_out_of_distribution(reasons)


__all__ = [
    "LABELS",
    "ORDER",
    "SENTENCES",
    "FlagReason",
    "codes_from_legacy",
    "describe",
    "format_codes",
    "is_out_of_distribution",
    "labels",
    "normalize",
    "parse_codes",
    "withholds_call",
]
