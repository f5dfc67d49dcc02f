"""Measure trained models on their own held-out test splits, clean and under camera shifts.

    python benchmarks/model_results.py DATA_DIR MODEL.safetensors [MODEL2 ...] --out docs/results

For each model it rebuilds the test split from the model card (checking the file list hash),
reports accuracy / macro-F1 / ECE / per-class metrics / confusion matrix, the accuracy under
every perturbation in ``engine.imaging.augment.ROBUSTNESS_SHIFTS``, and the review/OOD flag rates; it
writes ``<id>.json`` and a confusion-matrix PNG per model into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.imaging.augment import ROBUSTNESS_SHIFTS  # noqa: E402
from engine.models.resolve import load_model  # noqa: E402
from engine.training.data import split_samples
from engine.training.evaluate import evaluate_samples  # noqa: E402
from engine.training.metrics import format_report  # noqa: E402


def confusion_png(report: dict, title: str, path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    classes = report["classes"]
    cm = np.array(report["confusion_matrix"])
    cell, left, top = 90, 110, 70
    img = Image.new("RGB", (left + cell * len(classes) + 20, top + cell * len(classes) + 60), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=16)
    draw.text((10, 10), title, fill="black", font=font)
    draw.text((left, 40), "predicted", fill="black", font=font)
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    for i, true in enumerate(classes):
        draw.text((10, top + i * cell + cell // 2 - 8), true, fill="black", font=font)
        for j, pred in enumerate(classes):
            frac = cm[i, j] / rows[i, 0]
            shade = int(255 - 200 * frac)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 2, top + (i + 1) * cell - 2)
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text((box[0] + 30, box[1] + 35), str(cm[i, j]), fill="white" if frac > 0.5 else "black", font=font)
            if i == 0:
                draw.text((left + j * cell + 20, top + len(classes) * cell + 5), pred, fill="black", font=font)
    draw.text((10, top + len(classes) * cell + 30), "rows: true class", fill="black", font=font)
    img.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", default="docs/results")
    parser.add_argument("--no-shifts", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for model_path in args.models:
        started = time.time()
        loaded = load_model(model_path)
        card = loaded.card
        samples = split_samples(card, args.data_dir, "test")
        shifts = {"clean": ROBUSTNESS_SHIFTS["clean"]} if args.no_shifts else ROBUSTNESS_SHIFTS
        reports = evaluate_samples(loaded, samples, shifts)
        clean = reports["clean"]
        shifted = {k: v["accuracy"] for k, v in reports.items() if k != "clean"}
        split = card.training.get("recipe", {}).get("split", "?")
        result = {
            "model": clean["model"], "split": split, "architecture": card.architecture,
            "image_size": card.image_size, "model_input": card.preprocess.model_input,
            "train_seconds": card.training.get("train_seconds"), "best_epoch": card.training.get("best_epoch"),
            "test": {k: v for k, v in clean.items() if k != "model"},
            "robustness": {"accuracy": shifted,
                           "mean": float(np.mean(list(shifted.values()))) if shifted else None,
                           "worst": float(min(shifted.values())) if shifted else None},
            "flags_on_test": card.metrics.get(f"test_{split}", {}),
            "seconds": round(time.time() - started, 1),
        }
        (out / f"{card.id}.json").write_text(json.dumps(result, indent=2) + "\n")
        confusion_png(clean, f"{card.id} ({split} split test, n={clean['n']})", out / f"{card.id}_confusion.png")
        print(f"== {card.id} ({split} split) ==")
        print(format_report(clean))
        if shifted:
            print("robustness: mean {:.2f} %, worst {:.2f} %".format(result["robustness"]["mean"] * 100,
                                                                   result["robustness"]["worst"] * 100))
            for k, v in shifted.items():
                print(f"  {k:<20} {v * 100:6.2f} %")
    write_tables(out)
    return 0


def write_tables(out: Path) -> None:
    """Markdown tables over every <id>.json in ``out`` (docs/results.md includes them)."""
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    lines = ["| model | split | input | n test | accuracy | macro-F1 | ECE | robust mean | robust worst | train time |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        t, rob = r["test"], r["robustness"]
        fmt = lambda v: "—" if v is None else f"{v * 100:.2f} %"  # noqa: E731
        minutes = f"{r['train_seconds'] / 60:.1f} min" if r.get("train_seconds") else "—"
        lines.append(f"| {r['model']['id']} {r['model'].get('version', '')} | {r['split']} | {r['model_input']} {r['image_size']} px | {t['n']} | "
                     f"{fmt(t['accuracy'])} | {t['macro_f1']:.4f} | {t['ece']:.4f} | {fmt(rob['mean'])} | "
                     f"{fmt(rob['worst'])} | {minutes} |")
    lines.append("")
    for r in results:
        t = r["test"]
        lines += [f"### {r['model']['id']} {r['model'].get('version', '')} — {r['split']} split", "",
                  f"![confusion matrix]({'results/' + r['model']['id']}_confusion.png)", "",
                  "| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        for c in t["classes"]:
            m = t["per_class"][c]
            lines.append(f"| {c} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |")
        lines += ["", "Confusion matrix (rows = true, columns = predicted: " + ", ".join(t["classes"]) + "):", "",
                  "```"] + ["  ".join(f"{v:4d}" for v in row) for row in t["confusion_matrix"]] + ["```", ""]
        if r["robustness"]["accuracy"]:
            lines += ["| shift | accuracy |", "| --- | ---: |"]
            lines += [f"| {k} | {v * 100:.2f} % |" for k, v in r["robustness"]["accuracy"].items()]
            lines.append("")
    (out / "tables.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
