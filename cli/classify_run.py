"""One pass of ``classify`` over the scanned images: take each image's result (classified now,
read back from the store, or refused), write its CSV row, JSON record and heat map, and say what
the run adds up to.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.classify_messages import EXIT_OK, EXIT_PARTIAL, say, summary_line
from cli.classify_plan import SampleGroup, heatmap_name
from cli.classify_progress import PlainProgress, progress_bar
from cli.classify_store import ImageEntry
from engine.core.records import ReviewedImage
from engine.core.textsafe import printable
from engine.store.naming import image_key

log = logging.getLogger("allsight.cli")


@dataclass
class _Totals:
    """What the rows written so far add up to: the run's summary line and the JSON's "summary"."""

    counts: dict[str, int]
    n_ok: int = 0
    n_error: int = 0
    n_review: int = 0
    n_ood: int = 0
    n_withheld: int = 0

    def add(self, result: Any) -> None:
        if not result.ok:
            self.n_error += 1
            return
        self.n_ok += 1
        if ReviewedImage.from_result(result).withheld:
            self.n_withheld += 1  # the model cannot judge it: its class counts nowhere
        else:
            self.counts[result.predicted_class] = self.counts.get(result.predicted_class, 0) + 1
        self.n_review += result.needs_review
        self.n_ood += result.out_of_distribution

    def summary(self) -> dict[str, Any]:
        return {"n_images": self.n_ok + self.n_error, "counts": self.counts, "n_ok": self.n_ok,
                "n_error": self.n_error, "n_needs_review": self.n_review, "n_ood": self.n_ood,
                "n_withheld": self.n_withheld}


class ClassifyRun:
    """One pass over the scanned images: classify what is needed, write every output row."""

    def __init__(self, args, entries: list[ImageEntry], classifier, csv_file, json_file, heat_dir, columns, store,
                 groups: list[SampleGroup] | None = None, tally: Counter[str] | None = None,
                 heat_targets: dict[str, Path] | None = None, *, actor: str = "") -> None:
        self.args, self.classifier, self.store, self.actor = args, classifier, store, actor
        self.groups = groups or []
        self.csv_file, self.json_file, self.heat_dir, self.columns = csv_file, json_file, heat_dir, columns
        self.heat_targets = heat_targets or {}  # image key -> its heat-map file (planned and checked)
        self.entries = entries
        self.to_stdout = csv_file is sys.stdout
        # CSV rows on a terminal: file names with control characters shown escaped, not obeyed
        self.rows_on_terminal = self.to_stdout and sys.stdout.isatty()
        self.info = sys.stderr if self.to_stdout else sys.stdout
        self.heatmaps: dict[str, Path] = {}  # image key -> written overlay PNG
        self.results: list[tuple[ImageEntry, Any]] = []  # for a report and the sample summaries
        self.tally = tally if tally is not None else Counter()  # "recorded": results committed by this run
        self.heat_failed = 0
        self.bar: Any = PlainProgress()

    def execute(self, results: Iterator[Any] | None) -> int:
        """Write a row per entry; ``results`` yields the classified entries' results in order."""
        n_stored = sum(e.stored is not None for e in self.entries)
        self._announce()
        writer = csv.DictWriter(self.csv_file, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        if self.to_stdout:
            self.csv_file.flush()
        totals = _Totals({c: 0 for c in self.classifier.card.classes})
        records = self._write_rows(writer, results, totals)
        summary = totals.summary()
        samples = self.sample_summaries()
        if self.json_file is not None:
            self._write_json(records, summary, samples)
        self._say_totals(summary, samples, n_stored)
        return EXIT_PARTIAL if (totals.n_error or self.heat_failed) else EXIT_OK

    def _announce(self) -> None:
        """The model, where it runs and how many images: the run's first line (on stderr)."""
        classifier = self.classifier
        card = classifier.card
        n_todo = sum(e.stored is None and e.refused is None for e in self.entries)
        print(f"model {card.id} {card.version} (sha256 {card.weights_sha256[:12]}) on {classifier.runtime}; "
              f"{len(self.entries)} image(s)" + (f", {n_todo} to classify" if self.store is not None else ""),
              file=sys.stderr)

    def _write_rows(self, writer: csv.DictWriter, results: Iterator[Any] | None, totals: _Totals) -> list[dict]:
        """A CSV row (and heat map) per entry, in scan order; returns the JSON records (none without --json)."""
        records: list[dict[str, Any]] = []
        bar = self.bar = progress_bar(len(self.entries))
        try:
            for entry in self.entries:
                result = self._result(entry, results)
                self._write_csv_row(writer, result)
                record = result.to_dict()
                if self.store is not None:
                    record["sample_id"] = entry.sample_id
                    record["from_store"] = entry.stored is not None
                totals.add(result)
                if result.ok:
                    if self.heat_dir is not None:
                        target = self._write_heatmap(result)
                        if target is not None:
                            record["heatmap"] = str(target)
                elif entry.stored is None and entry.refused is None:
                    bar.write(printable(f"failed: {result.path}: {result.error}"))
                if self.json_file is not None:
                    records.append(record)
                self.results.append((entry, result))
                bar.update(1)
        finally:
            bar.close()
        return records

    @staticmethod
    def _result(entry: ImageEntry, results: Iterator[Any] | None) -> Any:
        """The entry's result: an error row if refused, the stored one, else the next classified."""
        if entry.refused is not None:
            from engine.core.records import ImageResult

            return ImageResult(str(entry.path), "error", error=entry.refused)
        if entry.stored is not None:
            return entry.stored
        return next(results)  # type: ignore[arg-type]

    def _write_csv_row(self, writer: csv.DictWriter, result: Any) -> None:
        row = result.csv_row()
        if self.rows_on_terminal:
            row = {k: printable(v) for k, v in row.items()}
        writer.writerow(row)
        if self.to_stdout:
            self.csv_file.flush()  # streamed: a pipe's reader sees each row as it comes

    def _write_json(self, records: list[dict], summary: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        classifier = self.classifier
        card = classifier.card
        doc: dict[str, Any] = {
            "model": {"id": card.id, "version": card.version, "sha256": card.weights_sha256},
            "device": str(classifier.device),
            "backend": classifier.backend.name,
            "precision": str(classifier.precision),
            # INT8 runs: how many images its fp32 check sent through the fp32 graph again
            **({"fp32_checked": classifier.backend.images_checked}
               if hasattr(classifier.backend, "images_checked") else {}),
            "results": records,
            "summary": summary,
            "samples": samples,
        }
        if self.store is not None:
            doc["db"] = str(self.store.path)
        self.json_file.write(json.dumps(doc, indent=2) + "\n")

    def _say_totals(self, summary: dict[str, Any], samples: list[dict[str, Any]], n_stored: int) -> None:
        """The summary line, a warning per sample whose call is withheld, and what the store got."""
        info = self.info
        print(summary_line(summary), file=info)
        for sample in samples:
            if sample["acquisition_warning"]:  # one prominent line per sample it concerns
                say(f"WARNING: sample {sample['sample_id']}: {sample['acquisition_warning']} "
                    f"({sample['n_unlike_training']} of {sample['n_ok'] - sample['n_excluded']} images unlike the "
                    "training images); "
                    f"call withheld: {sample['call']}", info)
        if self.store is not None:
            say(f"result store {self.store.path}: {self.tally['recorded']} new result(s) recorded, "
                f"{n_stored} already there", info)

    def print_outputs(self) -> None:
        """Where the CSV, JSON and heat maps are (once they are in place)."""
        args, info = self.args, self.info
        if args.out and not self.to_stdout:
            say(f"results: {args.out}", info)
        if self.json_file is not None:
            say(f"json: {args.json}", info)
        if self.heat_dir is not None:
            say(f"heat maps: {self.heat_dir}", info)

    def _write_heatmap(self, result: Any) -> Path | None:
        import cv2

        from engine.reports.files import atomic_write

        assert self.heat_dir is not None
        key = image_key(result.path)
        target = self.heat_targets.get(key)
        if target is None:  # not planned (never the case for a scanned image)
            used = {p.name.casefold() for p in self.heat_targets.values()}
            target = self.heat_targets[key] = heatmap_name(self.heat_dir, Path(result.path).stem, used)
        try:
            _, _, over = self.classifier.heatmap(result.path, result.predicted_class)
            ok, png = cv2.imencode(".png", cv2.cvtColor(over, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OSError("the image could not be encoded")
            atomic_write(target, lambda fh: fh.write(png.tobytes()), "heat map")
        except Exception as exc:  # a heat map must never stop the run
            self.heat_failed += 1
            log.debug("heat map for %s failed", result.path, exc_info=True)
            self.bar.write(printable(f"heat map for {result.path} not written: {exc}"))
            return None
        self.heatmaps[image_key(result.path)] = target
        return target

    def sample_summaries(self) -> list[dict[str, Any]]:
        """Each sample's summary (:func:`engine.core.summary.summarize`, the rule the GUI and
        the reports use): from the store with its reviews when there is one, else from this
        run's results. ``sample_id`` is added to each."""
        from engine.core.summary import summarize

        by_path = {image_key(e.path): r for e, r in self.results}
        out = []
        for g in self.groups:
            n_images = None
            if self.store is not None:
                records: list[Any] = self.store.predictions(g.sample_id, self.classifier.card.weights_sha256)
                stored = self.store.get_sample(g.sample_id)
                n_images = stored.n_images if stored is not None else None  # images left pending: "Incomplete"
            else:
                records = [by_path[image_key(p)] for p in g.paths if image_key(p) in by_path]
            out.append({"sample_id": g.sample_id, **summarize(records, n_images=n_images).to_dict()})
        return out
