"""Does the product know another lab's images when it sees them? BCCD against the ALL test split.

    python benchmarks/bccd_ood.py DATA_DIR [--model resnet18] [--bccd DIR] [--json out.json]

Sets (nothing is written to disk; see benchmarks/_bccd.py for how each is made):

* ``aria test``: the model's own held-out test split (in distribution; target <= 4 % flagged
  out of distribution);
* ``bccd fields``: another lab's whole fields (target >= 99 % flagged);
* ``bccd cell crops``: crops around its annotated white cells, the cell as large as a training
  field's (target >= 90 %);
* ``bccd colour-matched crops``: the same crops with their LAB colour statistics moved to the
  training set's, so only morphology and texture are left to tell them apart.

BCCD is reported by half: the *development* half (even image numbers) was looked at while the
detector was designed; the *evaluation* half (odd numbers) was not, and is the figure to quote.
Neither half is fitted on: the detector is fitted on the ALL training split and calibrated on
its validation split only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bccd  # noqa: E402

from engine.core.flags import FlagReason  # noqa: E402
from engine.inference.classifier import Classifier  # noqa: E402
from engine.io.images import load_image  # noqa: E402
from engine.training.data import split_samples  # noqa: E402


def rates(results) -> dict:
    n = len(results)
    reasons = Counter(str(f) for r in results for f in r.flags)
    ood = sum(r.out_of_distribution for r in results)
    unflagged_subtype = sum((not r.needs_review) and r.predicted_class in ("Early", "Pre", "Pro") for r in results)
    return {
        "n": n, "out_of_distribution": ood / n if n else 0.0,
        "flagged": sum(r.needs_review for r in results) / n if n else 0.0,
        "unflagged_all_subtype": unflagged_subtype / n if n else 0.0,
        "reasons": {k: v / n for k, v in sorted(reasons.items())},
        "calls": dict(Counter(r.predicted_class for r in results)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--bccd", help="BCCD folder (default $ALLSIGHT_BCCD or ../shared/data/bccd)")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()
    root = _bccd.locate(args.bccd)
    if root is None:
        print("BCCD not found: pass --bccd or set ALLSIGHT_BCCD", file=sys.stderr)
        return 2
    clf = Classifier(args.model)
    test = split_samples(clf.card, args.data_dir, "test")
    test_images = [load_image(s.path) for s in test]
    train = split_samples(clf.card, args.data_dir, "train")
    target_mean, target_std = _bccd.lab_stats([load_image(s.path) for s in train[::4]])

    sets: dict[str, list[np.ndarray]] = {"aria test (in distribution)": test_images}
    for half in ("evaluation", "development"):
        fields = _bccd.load_fields(root, half)
        crops = _bccd.cell_crops(fields)
        sets[f"bccd {half}: fields"] = [f.rgb for f in fields]
        sets[f"bccd {half}: cell crops"] = crops
        sets[f"bccd {half}: colour-matched crops"] = [_bccd.colour_match(c, target_mean, target_std) for c in crops]

    figures = {"model": f"{clf.card.id} {clf.card.version}", "sets": {}}
    print(f"model {figures['model']}; OOD threshold {clf.ood_threshold:.3f}\n")
    print("| set | n | out of distribution | unlike training | no white cell | unflagged ALL-subtype call |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, images in sets.items():
        r = rates(clf.classify_arrays(images, batch_size=64))
        figures["sets"][name] = r
        print(f"| {name} | {r['n']} | {100 * r['out_of_distribution']:.1f} % | "
              f"{100 * r['reasons'].get(FlagReason.UNLIKE_TRAINING.value, 0):.1f} % | "
              f"{100 * r['reasons'].get(FlagReason.NO_WHITE_CELL.value, 0):.1f} % | "
              f"{100 * r['unflagged_all_subtype']:.1f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
