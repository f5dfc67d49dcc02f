"""Sample-level summary of per-image results: class counts and fractions and a research-use call.

:func:`summarize` takes a sample's :class:`engine.core.records.ReviewedImage` records (what the
store returns, the GUI table shows and the reports print; a classifier's plain
:class:`~engine.core.records.ImageResult` counts as an image no one has reviewed). What makes an
image flagged, withheld or overridden is written once, on that record.

Shared by the GUI, the CLI, the PDF and the JSON:

* an image the model cannot judge (:attr:`~engine.core.records.ReviewedImage.withheld`: no white
  cell, blank, grayscale, out of focus, unlike the training images) counts towards no class until
  a person has reviewed it; it is counted in ``n_withheld``. Once reviewed, the reviewer's class
  counts;
* the **acquisition check** (here, and only here): when at least :data:`ACQUISITION_MAX_SHARE` of the sample's
  readable images (less those a reviewer excluded) are unlike the training images, the sample
  carries :data:`ACQUISITION_WARNING` and its call is withheld
  (:data:`CALL_INDETERMINATE_ACQUISITION`).

The call is a summary for research use, **not a diagnosis**; see :func:`summarize` for the rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS
from engine.core.flags import FlagReason
from engine.core.records import EXCLUDED_CLASS, ImageResult, ImageStatus, ReviewedImage

MALIGNANT_CLASSES: tuple[str, ...] = ("Early", "Pre", "Pro")
BENIGN_CLASS = "Benign"

#: Thresholds of the call rule, as exact fractions (compared in integer arithmetic).
MALIGNANT_MIN = (1, 2)        # malignant fraction >= 0.5
BENIGN_MIN = (8, 10)          # benign fraction >= 0.8
MIXED_MAX_GAP = (10, 100)     # top two subtypes within 10 percentage points (inclusive)

#: Acquisition check: the share of a sample's readable images flagged ``unlike_training`` at or
#: above which the whole sample is taken to come from an acquisition (stain, camera,
#: magnification) the model was not validated on, and its call is withheld. Why 1 in 4: the
#: detector is calibrated to flag at most ~4 % of in-distribution images, so a quarter is far
#: beyond chance (at a 4 % rate a 20-image sample of validated-like fields reaches it with a
#: probability of about 0.1 %, an 8-image one about 4 %), while a shifted acquisition has most
#: of its images flagged. With that many images unlike the validated set even the unflagged rest
#: is suspect — the detector misses part of a shifted set, and those are the images the call
#: would rest on — so a lower share than "most" must already withhold the call.
ACQUISITION_MAX_SHARE = (1, 4)
ACQUISITION_WARNING = "The model has not been validated on images like these"

RESEARCH_USE_NOTE = ("For research use only — not a diagnosis. A qualified person must review the "
                     "images and the result.")

CALL_CODES: tuple[str, ...] = ("ALL_EARLY", "ALL_PRE", "ALL_PRO", "ALL_MIXED", "BENIGN", "INDETERMINATE",
                               "INDETERMINATE_ACQUISITION", "INCOMPLETE")
CALL_INDETERMINATE = "Indeterminate"
CALL_INDETERMINATE_REVIEW = "Indeterminate — review recommended"
CALL_INDETERMINATE_ACQUISITION = "Indeterminate — images unlike the validated set"
CALL_INCOMPLETE = "Incomplete — not every image is classified yet"
CALL_BENIGN = "No ALL pattern detected (hematogones)"
CALL_MIXED = "ALL suspected: mixed subtypes"


@dataclass(frozen=True)
class SampleSummary:
    """Counts over one sample's images and the sample-level call.

    ``counts``/``fractions`` use each image's *final* class (the reviewer's when reviewed, else
    the model's) over the classified images: those with status "ok" that a reviewer did not mark
    :data:`engine.core.records.EXCLUDED_CLASS` and that are not withheld (``n_withheld``: flagged as
    beyond what the model can judge and not reviewed yet). ``model_counts`` is the model's own
    output over all ok images, unchanged by reviews. ``n_unlike_training`` counts the ok images
    flagged ``unlike_training`` that a reviewer did not exclude; ``acquisition_warning`` is
    :data:`ACQUISITION_WARNING` when the acquisition check fired, else ``None``.

    The image counts add up: ``n_images == n_classified + n_withheld + n_excluded + n_error +
    n_pending``. ``n_excluded`` is every image a reviewer excluded (readable or not), ``n_error``
    the unreadable ones not excluded, ``n_pending`` those not classified yet (never "failed").
    ``n_ok`` is every readable image (excluded ones included).
    """

    n_images: int
    n_ok: int
    n_error: int
    n_excluded: int
    n_classified: int
    counts: dict[str, int]
    fractions: dict[str, float]
    model_counts: dict[str, int]
    n_needs_review: int
    n_ood: int
    n_flagged: int
    n_reviewed: int
    n_flagged_unreviewed: int
    n_overridden: int
    malignant_fraction: float
    call: str
    call_code: str
    rationale: str
    n_withheld: int = 0
    n_unlike_training: int = 0
    acquisition_warning: str | None = None
    n_pending: int = 0

    @property
    def complete(self) -> bool:
        """Every image has a result (the call is given only then)."""
        return self.n_pending == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:.0f}%" if den else "0%"


def acquisition_check(n_unlike_training: int, n_images: int) -> bool:
    """True when ``n_unlike_training`` of ``n_images`` (readable, not excluded) images reach
    :data:`ACQUISITION_MAX_SHARE` (compared exactly, so 1 of 4 fires and 1 of 5 does not;
    never with no image)."""
    num, den = ACQUISITION_MAX_SHARE
    return n_images > 0 and n_unlike_training * den >= n_images * num


def summarize(records: Iterable[ReviewedImage | ImageResult], *, n_images: int | None = None) -> SampleSummary:
    """Summarise one sample's per-image records.

    ``n_images``: how many images the sample has, when ``records`` (the images with a result)
    may be fewer; the rest are *pending* (not classified yet), as are records whose status is
    :attr:`~engine.core.records.ImageStatus.PENDING`. A sample with a pending image gets no call:
    ``"Incomplete — not every image is classified yet"`` (``INCOMPLETE``), whatever its counts.

    Call rule (research use, not a diagnosis), on the final classes of the classified images
    (ok, not excluded by a reviewer, not withheld; fractions are over those images):

    0. at least :data:`ACQUISITION_MAX_SHARE` of the ok images not excluded by a reviewer are
       flagged ``unlike_training`` (reviewed or not: confirming one image's class does not make
       the model valid for the sample; an excluded image is no longer part of it) →
       ``"Indeterminate — images unlike the validated set"`` (``INDETERMINATE_ACQUISITION``),
       with :data:`ACQUISITION_WARNING`;
    1. no classified image → ``"Indeterminate"`` (``INDETERMINATE``);
    2. Early + Pre + Pro fraction >= 0.5 → ``"ALL suspected: <display name of the most frequent
       subtype>"`` (``ALL_EARLY`` / ``ALL_PRE`` / ``ALL_PRO``), or ``"ALL suspected: mixed
       subtypes"`` (``ALL_MIXED``) when the two most frequent subtypes are within 10 percentage
       points of each other (inclusive);
    3. Benign fraction >= 0.8 → ``"No ALL pattern detected (hematogones)"`` (``BENIGN``);
    4. otherwise → ``"Indeterminate — review recommended"`` (``INDETERMINATE``).

    Thresholds are compared exactly (integer arithmetic), so 5 of 10 is malignant and 8 of 10
    is benign. Images with an error are counted in ``n_error`` only, even if reviewed.

    An ok image is *withheld* (:attr:`~engine.core.records.ReviewedImage.withheld`: counted in
    ``n_withheld``, in no class) while it is not reviewed and its flags
    :func:`~engine.core.flags.withholds_call` — or, for a record without reason codes, it is
    ``out_of_distribution``.
    """
    items = [r if isinstance(r, ReviewedImage) else ReviewedImage.from_result(r) for r in records]
    n_pending = sum(r.status == ImageStatus.PENDING for r in items)
    items = [r for r in items if r.status != ImageStatus.PENDING]
    n_pending += max(0, n_images - len(items) - n_pending) if n_images is not None else 0
    counts = {c: 0 for c in CLASS_IDS}
    model_counts = {c: 0 for c in CLASS_IDS}
    n_ok = n_excluded = n_needs_review = n_ood = n_flagged = 0
    n_reviewed = n_flagged_unreviewed = n_overridden = n_withheld = n_unlike = 0
    for r in items:
        n_needs_review += r.needs_review
        n_ood += r.out_of_distribution
        n_flagged += r.flagged
        n_reviewed += r.reviewed
        n_flagged_unreviewed += r.to_review
        n_overridden += r.overridden
        if not r.ok:
            n_excluded += r.final_class == EXCLUDED_CLASS  # an unreadable file a reviewer left out
            continue
        n_ok += 1
        if r.predicted_class in model_counts:
            model_counts[r.predicted_class] += 1
        final = r.effective_class
        if final == EXCLUDED_CLASS:
            n_excluded += 1
            continue
        n_unlike += FlagReason.UNLIKE_TRAINING in r.flags
        if r.withheld:
            n_withheld += 1
        elif final in counts:
            counts[final] += 1

    n = sum(counts.values())
    fractions = {c: (counts[c] / n if n else 0.0) for c in CLASS_IDS}
    n_malignant = sum(counts[c] for c in MALIGNANT_CLASSES)
    n_error = len(items) - n_ok
    n_excluded_errors = sum(not r.ok and r.final_class == EXCLUDED_CLASS for r in items)
    n_usable = n_ok - (n_excluded - n_excluded_errors)
    n_total = len(items) + n_pending
    warning = ACQUISITION_WARNING if acquisition_check(n_unlike, n_usable) else None
    if n_pending:  # counts so far are shown; the call waits for every image
        call, code = CALL_INCOMPLETE, "INCOMPLETE"
        rationale = (f"{n_pending} of {n_total} images are not classified yet: the call is given when every "
                     "image has a result.")
    elif warning is not None:
        call, code = CALL_INDETERMINATE_ACQUISITION, "INDETERMINATE_ACQUISITION"
        rationale = (f"{n_unlike} of {n_usable} images ({_pct(n_unlike, n_usable)}) are unlike the images the "
                     f"model was trained on (the limit is {_pct(*ACQUISITION_MAX_SHARE)}): no call is given.")
    else:
        call, code, rationale = _call(counts, n, n_malignant, len(items), n_error - n_excluded_errors, n_excluded,
                                      n_withheld)
        if n_withheld and n:
            rationale += (f" {n_withheld} image(s) the model cannot judge are not counted until a person "
                          "reviews them.")
    if n_flagged_unreviewed:
        rationale += f" {n_flagged_unreviewed} flagged image(s) not reviewed yet."
    return SampleSummary(
        n_images=n_total, n_ok=n_ok, n_error=n_error - n_excluded_errors, n_excluded=n_excluded, n_classified=n,
        counts=counts, fractions=fractions, model_counts=model_counts, n_needs_review=n_needs_review,
        n_ood=n_ood, n_flagged=n_flagged, n_reviewed=n_reviewed, n_flagged_unreviewed=n_flagged_unreviewed,
        n_overridden=n_overridden, malignant_fraction=n_malignant / n if n else 0.0,
        call=call, call_code=code, rationale=rationale, n_withheld=n_withheld, n_unlike_training=n_unlike,
        acquisition_warning=warning, n_pending=n_pending)


def _call(counts: dict[str, int], n: int, n_malignant: int, n_images: int, n_error: int,
          n_excluded: int, n_withheld: int = 0) -> tuple[str, str, str]:
    if n == 0:
        why = f"No image could be classified ({n_images} image(s)"
        if n_error:
            why += f", {n_error} unreadable"
        if n_excluded:
            why += f", {n_excluded} excluded by review"
        if n_withheld:
            why += f", {n_withheld} the model cannot judge and not reviewed yet"
        return CALL_INDETERMINATE, "INDETERMINATE", why + ")."
    if n_malignant * MALIGNANT_MIN[1] >= n * MALIGNANT_MIN[0]:
        ranked = sorted(MALIGNANT_CLASSES, key=lambda c: (-counts[c], MALIGNANT_CLASSES.index(c)))
        top, second = ranked[0], ranked[1]
        head = f"{n_malignant} of {n} classified images ({_pct(n_malignant, n)}) show B-ALL subtypes"
        if (counts[top] - counts[second]) * MIXED_MAX_GAP[1] <= n * MIXED_MAX_GAP[0]:
            return (CALL_MIXED, "ALL_MIXED",
                    (f"{head}; {CLASS_DISPLAY_NAMES[top]} ({_pct(counts[top], n)}) and "
                     f"{CLASS_DISPLAY_NAMES[second]} ({_pct(counts[second], n)}) are within 10 points."))
        return (f"ALL suspected: {CLASS_DISPLAY_NAMES[top]}", f"ALL_{top.upper()}",
                f"{head}; most frequent: {CLASS_DISPLAY_NAMES[top]} ({_pct(counts[top], n)}).")
    n_benign = counts[BENIGN_CLASS]
    if n_benign * BENIGN_MIN[1] >= n * BENIGN_MIN[0]:
        return (CALL_BENIGN, "BENIGN",
                f"{n_benign} of {n} classified images ({_pct(n_benign, n)}) are benign (hematogones).")
    return (CALL_INDETERMINATE_REVIEW, "INDETERMINATE",
            (f"No clear pattern: B-ALL subtypes {_pct(n_malignant, n)}, benign {_pct(n_benign, n)} "
             f"of {n} classified images."))


__all__ = ["ACQUISITION_MAX_SHARE", "ACQUISITION_WARNING", "CALL_CODES", "CALL_INCOMPLETE", "CALL_INDETERMINATE_ACQUISITION",
           "RESEARCH_USE_NOTE", "SampleSummary", "acquisition_check", "summarize"]
