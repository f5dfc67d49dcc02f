"""CLI command ``classify``: classify image files and folders, write CSV/JSON and Grad-CAM maps.

Exit codes: 0 every image classified; 3 finished, but some images (or named inputs) failed;
2 usage or fatal error (no images, unwritable output, missing or corrupt model).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import IO, Any

from engine.errors import AllSightError

log = logging.getLogger("allsight.cli")

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 2, 3


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _open_output(path: str, what: str) -> IO[str]:
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise AllSightError(f"cannot write the {what} file {path}: {exc.strerror or exc}") from None


def _summary(results_counts: dict[str, Any]) -> str:
    c = results_counts
    per_class = ", ".join(f"{k} {v}" for k, v in c["counts"].items())
    return (f"{c['n_images']} image(s): {c['n_ok']} classified ({per_class}), "
            f"{c['n_needs_review']} need review, {c['n_ood']} out of distribution, {c['n_error']} failed")


def cmd_classify(args: argparse.Namespace) -> int:
    from engine.imageio import scan_paths

    scan = scan_paths(args.inputs)
    missing = [s for s in scan.skipped if s.reason == "no such file or folder"]
    for s in scan.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    if not scan.images:
        raise AllSightError(f"no image files found in {', '.join(args.inputs)}")

    from engine.inference import CSV_COLUMNS, Classifier  # torch: only once the inputs are known

    classifier = Classifier(args.model, device=args.device)

    # Open every output before the first image, so an unwritable path fails at once.
    files: list[IO[str]] = []
    try:
        csv_file = _open_output(args.out, "CSV") if args.out and args.out != "-" else sys.stdout
        if csv_file is not sys.stdout:
            files.append(csv_file)
        json_file = _open_output(args.json, "JSON") if args.json else None
        if json_file is not None:
            files.append(json_file)
        heat_dir = Path(args.heatmaps) if args.heatmaps else None
        if heat_dir is not None:
            try:
                heat_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AllSightError(f"cannot create the heat-map folder {heat_dir}: {exc.strerror or exc}") from None
        return _run(args, scan.images, classifier, csv_file, json_file, heat_dir, CSV_COLUMNS, bool(missing))
    finally:
        for f in files:
            f.close()


def _run(args, images, classifier, csv_file, json_file, heat_dir, columns, had_missing) -> int:
    import cv2
    from tqdm import tqdm

    card = classifier.card
    to_stdout = csv_file is sys.stdout
    report = sys.stderr if to_stdout else sys.stdout
    print(f"model {card.id} {card.version} (sha256 {card.weights_sha256[:12]}) on {classifier.device}; "
          f"{len(images)} image(s)", file=sys.stderr)
    writer = csv.DictWriter(csv_file, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    csv_file.flush()

    counts = {c: 0 for c in card.classes}
    n_ok = n_error = n_review = n_ood = 0
    heat_failed = 0
    used_names: set[str] = set()
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(images), desc="classify", unit="img", dynamic_ncols=True, file=sys.stderr,
               disable=not sys.stderr.isatty())
    try:
        for result in classifier.classify_paths(images, batch_size=args.batch_size, workers=args.workers):
            writer.writerow(result.csv_row())
            csv_file.flush()
            record = result.to_dict()
            if result.ok:
                n_ok += 1
                counts[result.predicted_class] = counts.get(result.predicted_class, 0) + 1
                n_review += result.needs_review
                n_ood += result.out_of_distribution
                if heat_dir is not None:
                    target = _heatmap_name(heat_dir, Path(result.path).stem, used_names)
                    try:
                        _, _, over = classifier.heatmap(result.path, result.predicted_class)
                        if not cv2.imwrite(str(target), cv2.cvtColor(over, cv2.COLOR_RGB2BGR)):
                            raise OSError("the image could not be written")
                        record["heatmap"] = str(target)
                    except Exception as exc:  # a heat map must never stop the run
                        heat_failed += 1
                        log.debug("heat map for %s failed", result.path, exc_info=True)
                        tqdm.write(f"heat map for {result.path} not written: {exc}", file=sys.stderr)
            else:
                n_error += 1
                tqdm.write(f"failed: {result.path}: {result.error}", file=sys.stderr)
            if json_file is not None:
                records.append(record)
            bar.update(1)
    finally:
        bar.close()

    summary = {"n_images": n_ok + n_error, "counts": counts, "n_ok": n_ok, "n_error": n_error,
               "n_needs_review": n_review, "n_ood": n_ood}
    if json_file is not None:
        doc = {
            "model": {"id": card.id, "version": card.version, "sha256": card.weights_sha256},
            "device": str(classifier.device),
            "results": records,
            "summary": summary,
        }
        json_file.write(json.dumps(doc, indent=2) + "\n")
        json_file.flush()
    print(_summary(summary), file=report)
    if args.out and not to_stdout:
        print(f"results: {args.out}", file=report)
    if json_file is not None:
        print(f"json: {args.json}", file=report)
    if heat_dir is not None:
        print(f"heat maps: {heat_dir}", file=report)
    return EXIT_PARTIAL if (n_error or heat_failed or had_missing) else EXIT_OK


def _heatmap_name(folder: Path, stem: str, used: set[str]) -> Path:
    """``<stem>_gradcam.png``, with ``_2``, ``_3``... when two inputs share a stem."""
    name, n = f"{stem}_gradcam.png", 1
    while name in used:
        n += 1
        name = f"{stem}_{n}_gradcam.png"
    used.add(name)
    return folder / name


def _add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images and folders; write a CSV (and JSON, heat maps)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    p.add_argument("--model", metavar="ID|PATH", help="shipped model id (default resnet18) or a .safetensors path")
    p.add_argument("--out", metavar="results.csv", help="CSV file, one row per image (default: standard output)")
    p.add_argument("--json", metavar="results.json", help="also write every result and a summary as JSON")
    p.add_argument("--heatmaps", metavar="DIR", help="write a Grad-CAM overlay DIR/<name>_gradcam.png per image")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N")
    p.add_argument("--workers", type=_positive_int, default=2, metavar="N", help="image decoding threads")
    p.set_defaults(func=cmd_classify)


REGISTRARS = [_add_classify]
