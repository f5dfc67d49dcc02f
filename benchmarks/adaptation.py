"""Does a lab's fine-tune help, and what does it forget? (issue 14)

    python benchmarks/adaptation.py DATA_DIR [--model resnet18] [--n 25 50 100 200]
        [--guards none distill replay replay+distill] [--epochs 10] [--work /tmp/allsight-adaptation]
        [--out docs/results/adaptation.json]

A "new lab" is made from the development set: a strong stain change (hue +12°, saturation
×1.3), illumination (gamma 0.8, a blue cast) and magnification (×1.25) — :func:`new_lab` —
which the shipped model handles badly. The lab's labelled images are N fields of the *base
model's validation split* (never trained on) in the new look, chosen by contiguous blocks of
each class's numbering (neighbouring numbers share patients), written to a scratch folder
(``--work``; never into the repository). Each run fine-tunes the base model with the same code
as ``main.py train DATA --init MODEL`` and the retraining wizard
(:func:`engine.training.lab_training.lab_training_data` + :func:`engine.training.train.train`),
with a forgetting guard:

* ``none`` — plain fine-tune;
* ``distill`` — distillation from the base model (the guard when a lab has only its own images);
* ``replay`` — the development set's training split replayed 1:1 with the lab's images;
* ``replay+distill`` — both;
* ``replay x2`` — replay with two development images per lab image and epoch.

``--augment standard+swap`` (the default, as the fine-tune's) trains with the standard preset
plus the base model's background swap; ``base`` with the base model's whole recipe; ``standard``
without the swap (each run is kept in the JSON with its ``"augment"``).

Reported per run: accuracy on the base model's *test split* in the new look (held out, never
seen in any look) and as it is (the original lab: forgetting), before and after, and the
seconds the run took on this machine (with the clean-test evaluation time of the same run as
the ratio's yardstick).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import CLASS_IDS  # noqa: E402
from engine.core.errors import DataLayoutError  # noqa: E402
from engine.imaging.augment import color_cast, gamma, hue_saturation  # noqa: E402
from engine.io.images import load_image  # noqa: E402
from engine.models.resolve import load_model  # noqa: E402
from engine.training.data import split_samples
from engine.training.evaluate import evaluate_samples  # noqa: E402

GUARDS = {"none": {"distill": 0.0, "replay": False}, "distill": {"distill": 1.0, "replay": False},
          "replay": {"distill": 0.0, "replay": True}, "replay+distill": {"distill": 1.0, "replay": True},
          "replay x2": {"distill": 0.0, "replay": True, "ratio": 2.0}}


def center_zoom(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = int(min(h, w) * scale)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(rgb[top:top + side, left:left + side], (w, h), interpolation=cv2.INTER_LINEAR)


def new_lab(rgb: np.ndarray) -> np.ndarray:
    """The new lab's look: stain, illumination and magnification all differ."""
    return center_zoom(color_cast(gamma(hue_saturation(rgb, 12, 1.3), 0.8), (0.92, 1.0, 1.1)), 0.8)


def labelled_images(pool, n: int, folder: Path) -> Path:
    """N of ``pool`` (samples) in the new look as class folders under ``folder``: N/4 per class
    (as a lab labelling for the wizard would), taken as the first images of the class's
    numbering (contiguous: few patients)."""
    if folder.exists():
        shutil.rmtree(folder)
    by_class = {c: sorted((s for s in pool if s.label == c), key=lambda s: (s.number, s.path.name))
                for c in range(len(CLASS_IDS))}
    seen: set[str] = set()
    for c, members in by_class.items():
        k = n // len(CLASS_IDS) + (1 if c < n % len(CLASS_IDS) else 0)
        out = folder / CLASS_IDS[c]
        out.mkdir(parents=True)
        unique = []
        for s in members:  # the development set holds a few identical fields: a lab would remove the copies
            digest = hashlib.sha256(s.path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                unique.append(s)
        for s in unique[:k]:
            rgb = new_lab(load_image(s.path))
            cv2.imwrite(str(out / f"{s.path.stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def augment_for(name: str, base_card):
    """base: the base model's recipe; standard: the preset; standard+swap: the preset with the
    base recipe's background swap (the call keeps following the white cell)."""
    from engine.imaging.augment import AugmentConfig
    from engine.training.lab_training import base_augment, fine_tune_augment

    if name == "base":
        return base_augment(base_card)
    if name == "standard+swap":  # the fine-tune's default
        return fine_tune_augment(base_card)
    return AugmentConfig.preset("standard")


def measure(loaded, test) -> dict[str, float]:
    t = time.time()
    reports = evaluate_samples(loaded, test, {"original_lab": lambda im: im, "new_lab": new_lab})
    return {"original_lab": reports["original_lab"]["accuracy"], "new_lab": reports["new_lab"]["accuracy"],
            "new_lab_flagged": reports["new_lab"].get("needs_review_fraction"),
            "eval_seconds": round(time.time() - t, 1)}


def run(args, n: int, guard: str, base_card, test) -> dict:
    from engine.training.lab_training import lab_training_data
    from engine.training.train import TrainConfig, train

    work = Path(args.work)
    folder = labelled_images(split_samples(base_card, args.data_dir, "val"), n, work / f"lab-{n}")
    g = GUARDS[guard]
    try:
        data = lab_training_data(folders=[folder], replay_dir=args.data_dir if g["replay"] else None,
                                 base_card=base_card, seed=0)
    except DataLayoutError as exc:  # too few images per class: the wizard refuses them the same way
        return {"n": n, "guard": guard, "augment": args.augment, "refused": str(exc)}
    cfg = TrainConfig(data_dir=str(folder), arch=base_card.architecture, init=args.model, epochs=args.epochs,
                      image_size=base_card.image_size, batch_size=32, lr=args.lr, patience=args.epochs,
                      model_input=base_card.preprocess.model_input, white_balance=base_card.preprocess.white_balance,
                      augment=augment_for(args.augment, base_card),
                      out_dir=str(work / f"model-{n}-{guard.replace(' ', '')}"),
                      model_id=f"adapt-{n}-{guard.replace(' ', '')}", distill=g["distill"],
                      replay_ratio=g.get("ratio", 1.0),
                      workers=1)
    started = time.time()
    last = None
    for p in train(cfg, data=data):
        last = p
        if p.phase == "validate":
            print(f"  n={n} {guard} epoch {p.metrics['epoch']}: val_acc {p.metrics['val_acc']:.3f}", flush=True)
    seconds = time.time() - started
    assert last is not None
    after = measure(load_model(last.metrics["model_path"]), test)
    return {"n": n, "guard": guard, "augment": args.augment, "lab_images": data.fingerprint["n_images"],
            "model_path": last.metrics["model_path"],
            "train_seconds": round(seconds, 1), "after": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--guards", nargs="+", default=list(GUARDS), choices=list(GUARDS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--augment", default="standard+swap", choices=["standard+swap", "base", "standard"],
                        help="standard+swap: the fine-tune's default (engine.training.lab_training.fine_tune_augment); "
                             "base: the base model's whole recipe; standard: the preset without the swap")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--work", default="/tmp/allsight-adaptation")
    parser.add_argument("--out", default="docs/results/adaptation.json")
    args = parser.parse_args()
    base = load_model(args.model)
    test = split_samples(base.card, args.data_dir, "test")
    before = measure(base, test)
    print(f"before: {json.dumps(before)}", flush=True)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.update({"model": f"{base.card.id}@{base.card.version}", "new_lab": new_lab.__doc__, "before": before,
                   "epochs": args.epochs, "lr": args.lr})
    runs = {(r["n"], r["guard"], r.get("augment", "standard")): r for r in result.get("runs", [])}
    for n in args.n:
        for guard in args.guards:
            r = run(args, n, guard, base.card, test)
            if "train_seconds" in r:
                r["train_seconds_per_eval_seconds"] = round(r["train_seconds"] / max(before["eval_seconds"], 1e-6), 1)
            runs[(n, guard, args.augment)] = r
            print(json.dumps(r), flush=True)
            result["runs"] = sorted(runs.values(), key=lambda r: (r["n"], r["guard"], r.get("augment", "standard")))
            out.write_text(json.dumps(result, indent=2) + "\n")  # after every run: a stopped session keeps them
    return 0


if __name__ == "__main__":
    sys.exit(main())
