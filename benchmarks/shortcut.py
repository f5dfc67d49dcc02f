"""Shortcut probes: does the model's call follow the white cell, or the field's acquisition look?

    python benchmarks/shortcut.py DATA_DIR [--model resnet18] [--json out.json] [--limit N]

Each class of the ALL data set was photographed with its own background tint and illumination,
so a model can score well on its own test split by recognising the background. Three probes,
all built in memory from the model's held-out test split (rebuilt from its card; nothing is
written), separate the two (see :mod:`engine.imaging.probes`):

(a) cell-free fields: every white cell painted out. There is nothing to judge, so the image
    should be flagged; an unflagged ALL-subtype call, or a call of the field's own class, comes
    from the background alone.
(b) background swap: the white cells of test image A on the painted-out field of a test image B
    of another class (pairs drawn with a seeded RNG). The truth is A's class; "follows the
    background" counts calls of B's class. A control swaps onto a same-class B, so the cost of
    the compositing itself can be told apart from the cost of a foreign background.
(c) strong acquisition shifts (:data:`engine.imaging.probes.STRONG_SHIFTS`): accuracy, ECE, flag rate,
    accuracy on the images left unflagged; the mean and worst over the shifts; and, on clean
    images, how many errors go out unflagged with confidence >= 0.99.

"Flagged" is any of ``needs_review``, ``out_of_distribution`` or a non-empty ``flags``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ensemble import TTA_VIEWS, Ensemble, View, probabilities  # noqa: E402
from engine.core.records import ImageResult  # noqa: E402
from engine.imaging.cells import has_white_cell  # noqa: E402
from engine.imaging.probes import STRONG_SHIFTS, background_swap, cell_free, paint_out_mask  # noqa: E402
from engine.inference.classifier import Classifier  # noqa: E402
from engine.io.images import load_image  # noqa: E402
from engine.training.data import split_samples  # noqa: E402
from engine.training.metrics import expected_calibration_error  # noqa: E402

BENIGN = "Benign"
CONFIDENT = 0.99


def is_flagged(r: ImageResult) -> bool:
    """Whether a person is told to look at the image (an unreadable one counts as flagged)."""
    return (not r.ok) or r.needs_review or r.out_of_distribution or bool(getattr(r, "flags", ()))


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _mean(mask: Sequence[bool] | np.ndarray) -> float | None:
    arr = np.asarray(mask, bool)
    return float(arr.mean()) if arr.size else None


def predicted_indices(results: Sequence[ImageResult], classes: Sequence[str]) -> np.ndarray:
    """The predicted class index of each result (-1 for an unreadable image: never correct)."""
    return np.array([classes.index(r.predicted_class) if r.ok else -1 for r in results], np.int64)


def set_metrics(results: Sequence[ImageResult], labels: np.ndarray,
                classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, ECE, flag rate and accuracy on the unflagged images of one labelled set."""
    probs = probabilities(results, classes)
    correct = predicted_indices(results, classes) == labels
    flagged = np.array([is_flagged(r) for r in results], bool)
    conf = np.array([r.confidence if r.ok else 0.0 for r in results])
    return {
        "n": len(results), "accuracy": _mean(correct),
        "ece": expected_calibration_error(probs, labels), "flagged": _mean(flagged),
        "n_unflagged": int((~flagged).sum()),
        "accuracy_unflagged": _mean(correct[~flagged]),
        "confident_unflagged_errors": int((~correct & ~flagged & (conf >= CONFIDENT)).sum()),
        # Why images are flagged (an image may carry several codes) and how the review load falls
        # on each true class: the figures that tell a low-confidence load from an OOD one.
        "flag_reasons": {str(code): _mean([code in r.flags for r in results])
                         for code in sorted({str(c) for r in results for c in r.flags})},
        "flagged_by_class": {c: _mean(flagged[labels == k]) for k, c in enumerate(classes)},
    }


def cell_free_probe(results: Sequence[ImageResult], labels: np.ndarray,
                    classes: Sequence[str]) -> dict[str, Any]:
    """Flag rate and calls on fields with nothing to judge ("own class": the field's label)."""
    flagged = np.array([is_flagged(r) for r in results], bool)
    pred = [r.predicted_class if r.ok else None for r in results]
    subtype = np.array([p is not None and p != BENIGN for p in pred], bool)
    own = np.array([p == classes[y] for p, y in zip(pred, labels, strict=False)], bool)
    counts = Counter(p for p in pred if p is not None)
    return {
        "n": len(results), "flagged": _mean(flagged),
        "out_of_distribution": _mean([r.out_of_distribution for r in results]),
        "unflagged_subtype_call": _mean(subtype & ~flagged),
        "called_own_class": _mean(own), "unflagged_own_class": _mean(own & ~flagged),
        "class_distribution": {c: counts.get(c, 0) / max(1, len(results)) for c in classes},
        "flag_reasons": dict(Counter(str(f) for r in results for f in getattr(r, "flags", ()))),
    }


def pair_indices(labels: np.ndarray, rng: np.random.Generator, same_class: bool) -> np.ndarray:
    """For each image, a partner: of a different class, or (control) another of the same class."""
    idx = np.arange(len(labels))
    partners = np.full(len(labels), -1)
    for i, y in enumerate(labels):
        pool = idx[(labels == y) & (idx != i)] if same_class else idx[labels != y]
        if len(pool):
            partners[i] = int(rng.choice(pool))
    return partners


def swap_probe(results: Sequence[ImageResult], a_labels: np.ndarray, b_labels: np.ndarray,
               classes: Sequence[str]) -> dict[str, Any]:
    """How often the call is A's class (the cells) or B's (the background), overall and by pair."""
    pred = predicted_indices(results, classes)
    flagged = np.array([is_flagged(r) for r in results], bool)
    cells, background = pred == a_labels, pred == b_labels
    by_pair: dict[str, dict[str, Any]] = {}
    for ya in range(len(classes)):
        for yb in range(len(classes)):
            sel = (a_labels == ya) & (b_labels == yb)
            if sel.any():
                by_pair[f"{classes[ya]}->{classes[yb]}"] = {
                    "n": int(sel.sum()), "follows_cells": _mean(cells[sel]),
                    "follows_background": _mean(background[sel])}
    return {
        "n": len(results), "follows_cells": _mean(cells), "follows_background": _mean(background),
        "other": _mean(~cells & ~background), "flagged": _mean(flagged),
        "out_of_distribution": _mean([r.out_of_distribution for r in results]),
        "unflagged_follows_cells": _mean(cells & ~flagged),
        "unflagged_follows_background": _mean(background & ~flagged),
        "by_pair": by_pair,
    }


@contextmanager
def timed(label: str, log: dict[str, float]) -> Iterator[None]:
    """Record (and print to stderr) the seconds a step takes: the benchmark must stay short."""
    started = time.perf_counter()
    yield
    log[label] = round(time.perf_counter() - started, 1)
    print(f"  {label}: {log[label]:.1f} s", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--model", action="append", help="a shipped model id or a .safetensors path (default "
                        "resnet18); given more than once, the models' ensemble (benchmarks/ensemble.py)")
    parser.add_argument("--tta", choices=sorted(TTA_VIEWS), help="test-time augmentation: one model, each image "
                        "classified mirrored too (flip) or in four quarter turns (rot4), as an ensemble")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--limit", type=int, help="a seeded random subset of this many test images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and of the swap pairs")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    members: list[Classifier | View] = [Classifier(m, device="cpu") for m in args.model or ["resnet18"]]
    if args.tta:
        if len(members) > 1:
            parser.error("--tta takes one --model")
        members = [View(members[0], turns, mirrored) for turns, mirrored in TTA_VIEWS[args.tta]]
    clf = members[0] if len(members) == 1 else Ensemble(members, args.data_dir)
    card, classes = members[0].card, list(members[0].classes)
    samples = list(split_samples(card, args.data_dir, "test"))
    rng = np.random.default_rng(args.seed)
    if args.limit and args.limit < len(samples):
        chosen = sorted(rng.choice(len(samples), args.limit, replace=False))
        samples = [samples[i] for i in chosen]
    seconds: dict[str, float] = {}

    def run(images: Sequence[np.ndarray]) -> list[ImageResult]:
        return clf.classify_arrays(list(images), batch_size=args.batch_size)

    with timed("decode", seconds):
        raw = [load_image(s.path) for s in samples]
    labels = np.array([s.label for s in samples], np.int64)

    # (a) cell-free fields
    with timed("paint out", seconds):
        free = [cell_free(im) for im in raw]
    detected = np.array([has_white_cell(im) for im in raw], bool)
    with timed("classify cell-free", seconds):
        a = cell_free_probe(run(free), labels, classes)
    a["painted_fraction"] = float(np.mean([(paint_out_mask(im) > 0).mean() for im in raw]))
    a["detector_finds_cell_after"] = _mean([has_white_cell(im) for im in free])

    # (b) background swap, and the same-class control
    swaps: dict[str, dict[str, Any]] = {}
    for kind, same in (("foreign", False), ("control_same_class", True)):
        partners = pair_indices(labels, rng, same)
        keep = [i for i in range(len(raw)) if detected[i] and partners[i] >= 0]
        with timed(f"build swaps ({kind})", seconds):
            images = [background_swap(raw[i], raw[partners[i]], background_free=free[partners[i]])
                      for i in keep]
        with timed(f"classify swaps ({kind})", seconds):
            results = run(images)
        swaps[kind] = swap_probe(results, labels[keep], labels[partners[keep]], classes)
    b = {**swaps["foreign"], "skipped_no_cell_in_a": int((~detected).sum()),
         "control_same_class": swaps["control_same_class"]}

    # (c) strong shifts
    shifts: dict[str, dict[str, Any]] = {}
    for name, fn in STRONG_SHIFTS.items():
        with timed(f"shift {name}", seconds):
            shifts[name] = set_metrics(run([fn(im) for im in raw]), labels, classes)
    others = {k: v["accuracy"] for k, v in shifts.items() if k != "clean"}
    worst = min(others, key=others.get)
    c = {"shifts": shifts, "mean_accuracy": float(np.mean(list(others.values()))),
         "worst_accuracy": others[worst], "worst_shift": worst,
         "clean_confident_unflagged_errors": shifts["clean"]["confident_unflagged_errors"]}

    report = {"model": {"id": card.id, "version": card.version, "sha256": card.weights_sha256},
              **({"ensemble": [{"id": m.card.id, "version": m.card.version, "sha256": m.card.weights_sha256,
                                "image_size": m.card.image_size} for m in members], "tta": args.tta,
                  "ensemble_review_threshold": clf.review_threshold} if isinstance(clf, Ensemble) else {}),
              "n_test_images": len(samples), "limit": args.limit, "seed": args.seed,
              "white_cell_detected_on_clean": _mean(detected),
              "cell_free": a, "background_swap": b, "strong_shifts": c, "seconds": seconds}
    print_report(report, classes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> None:
    """Print a markdown table; the first ``left`` columns are left-aligned, the rest right."""
    print("| " + " | ".join(header) + " |")
    print("|" + "".join(" --- |" if k < left else " ---: |" for k in range(len(header))))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    print()


def print_report(rep: dict[str, Any], classes: Sequence[str]) -> None:
    a, b, c = rep["cell_free"], rep["background_swap"], rep["strong_shifts"]
    m = rep["model"]
    subset = f" (random subset, seed {rep['seed']})" if rep["limit"] else ""
    print(f"model {m['id']} {m['version']}; {rep['n_test_images']} test images{subset}; "
          f"white cell detected on {pct(rep['white_cell_detected_on_clean'])} of clean fields\n")

    print("**(a) Cell-free fields** (white cells painted out; should be flagged)\n")
    table(["n", "painted out", "detector still finds a cell", "flagged", "of which OOD",
           "unflagged ALL-subtype call", "called own class", "unflagged own class",
           *(f"called {k}" for k in classes)],
          [[a["n"], pct(a["painted_fraction"]), pct(a["detector_finds_cell_after"]), pct(a["flagged"]),
            pct(a["out_of_distribution"]), pct(a["unflagged_subtype_call"]), pct(a["called_own_class"]),
            pct(a["unflagged_own_class"]), *(pct(a["class_distribution"][k]) for k in classes)]], left=0)

    ctrl = b["control_same_class"]
    print("**(b) Background swap** (A's white cells on B's painted-out field; truth = A's class)\n")
    table(["pairs", "n", "follows cells (A)", "follows background (B)", "other", "flagged",
           "of which OOD", "unflagged & follows cells", "unflagged & follows background"],
          [["A, B of different classes", b["n"], pct(b["follows_cells"]), pct(b["follows_background"]),
            pct(b["other"]), pct(b["flagged"]), pct(b["out_of_distribution"]),
            pct(b["unflagged_follows_cells"]), pct(b["unflagged_follows_background"])],
           ["control: B of the same class", ctrl["n"], pct(ctrl["follows_cells"]), "—",
            pct(ctrl["other"]), pct(ctrl["flagged"]), pct(ctrl["out_of_distribution"]),
            pct(ctrl["unflagged_follows_cells"]), "—"]])
    print(f"({b['skipped_no_cell_in_a']} test images without a detected white cell were not used as A.)\n")
    print("Follows cells, by pair (rows: A's class = truth; columns: B's background; "
          "diagonal: the same-class control):\n")
    rows = []
    for ya in classes:
        row = [ya]
        for yb in classes:
            s = (ctrl if ya == yb else b)["by_pair"].get(f"{ya}->{yb}")
            row.append("" if s is None else f"{pct(s['follows_cells'])} ({s['n']})")
        rows.append(row)
    table(["A \\ B", *classes], rows)

    print("**(c) Strong acquisition shifts**\n")
    table(["shift", "accuracy", "ECE", "flagged", "accuracy on unflagged (n)",
           f"unflagged errors, conf >= {CONFIDENT}"],
          [[name, pct(s["accuracy"]), f"{s['ece']:.3f}", pct(s["flagged"]),
            f"{pct(s['accuracy_unflagged'])} ({s['n_unflagged']})", s["confident_unflagged_errors"]]
           for name, s in c["shifts"].items()])
    print(f"Non-clean shifts: mean accuracy {pct(c['mean_accuracy'])}, worst {pct(c['worst_accuracy'])} "
          f"({c['worst_shift']}). Clean: {c['clean_confident_unflagged_errors']} unflagged errors with "
          f"confidence >= {CONFIDENT}.")


if __name__ == "__main__":
    sys.exit(main())
