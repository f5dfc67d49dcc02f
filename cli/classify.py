"""CLI command ``classify``: classify image files and folders, write CSV/JSON, Grad-CAM maps,
PDF reports, and (with ``--db``) record every result in the result store.

Exit codes: 0 every image classified; 3 finished, but some images (or named inputs) failed;
2 usage or fatal error (no images, unwritable output, an output that would replace an input or
another output: :mod:`cli.outputs`, missing or corrupt model).

The CSV and JSON go to temporary files beside their targets (:class:`engine.reports.files.AtomicFile`)
and are renamed into place together once every row is written: an interrupted or failed run
leaves the files that were there as they were (``--db`` results are committed per image anyway).

With ``--db FILE`` each folder INPUT is one *sample* of the result store (sample ID = the
folder's name, ``NAME (2)`` when another folder's sample has that ID: the app's rule,
:meth:`engine.store.results.ResultStore.register_sample`); image files named directly form one
sample named after their common parent folder (``loose-files`` when they have none in common). Every result is committed to the store
as it arrives, so a run that is interrupted and started again classifies only what is missing
(:meth:`engine.store.results.ResultStore.pending_paths`), while its CSV/JSON still list every image once,
in the same order as a fresh run: results already stored are read back from the store. A sample
that is signed off is never changed: its stored results are output as they are.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.classify_plan import (
    SampleGroup,
    group_samples,
    heatmap_name,
    heatmap_targets,
    report_targets,
)
from cli.classify_progress import PlainProgress, progress_bar
from cli.outputs import Output, OutputGuard, check_writable, model_files
from cli.signin import add_account_option
from engine.core.choices import BackendName, DeviceName
from engine.core.errors import AllSightError
from engine.core.records import ReviewedImage
from engine.core.textsafe import printable
from engine.store.naming import LOOSE_SAMPLE_ID, image_key

if TYPE_CHECKING:  # the engine's heavy modules load only once the inputs are known
    from engine.core.records import ImageResult
    from engine.models.checkpoint import ModelCard
    from engine.reports.files import AtomicFile
    from engine.store.results import ResultStore
    from engine.workflow.classification import ImageClassified, SamplePlan

log = logging.getLogger("allsight.cli")

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 2, 3

#: Sample ID of a ``--report`` without ``--db`` that covers more than one folder (or loose files).
RUN_SAMPLE_ID = "classify-run"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _say(text: str, file: Any = None) -> None:
    """Print a line that may hold file names or sample IDs: control characters made visible."""
    print(printable(text), file=sys.stderr if file is None else file)


def _summary(results_counts: dict[str, Any]) -> str:
    c = results_counts
    per_class = ", ".join(f"{k} {v}" for k, v in c["counts"].items())
    withheld = c.get("n_withheld", 0)
    return (f"{c['n_images']} image(s): {c['n_ok']} classified ({per_class}"
            + (f"; {withheld} the model cannot judge, not counted" if withheld else "") + "), "
            f"{c['n_needs_review']} need review, {c['n_ood']} out of distribution, {c['n_error']} failed")


# ------------------------------------------------------------------------------------ command
@dataclass
class _Entry:
    """One scanned image: where its result comes from."""

    path: Path
    sample_id: str | None = None
    stored: Any = None  # an ImageResult rebuilt from the store
    refused: str | None = None  # why it was not classified (a signed-off sample)


def _db_path(value: str) -> Path:
    if value == "default":
        from engine.store.results import default_db_path

        return default_db_path()
    return Path(value)


def _planned_outputs(args: argparse.Namespace, groups: list[SampleGroup], heat_dir: Path | None,
                     heat_targets: dict[str, Path]) -> list[Output]:
    """Every path the run will write (CSV, JSON, each PDF, the heat-map folder and its files)."""
    outputs = []
    if args.out and args.out != "-":
        outputs.append(Output("--out", Path(args.out)))
    if args.json:
        outputs.append(Output("--json", Path(args.json)))
    if args.report:
        report = Path(args.report)
        pdfs = report_targets(report, [g.sample_id for g in groups]).values() if args.db else [report]
        outputs.extend(Output("--report", p) for p in pdfs)
    if heat_dir is not None:
        outputs.append(Output("--heatmaps", heat_dir, folder=True))
        outputs.extend(Output("--heatmaps", p) for p in heat_targets.values())
    return outputs


def cmd_classify(args: argparse.Namespace) -> int:
    from engine.io.images import scan_paths

    report_path = Path(args.report) if args.report else None
    out_path = Path(args.out) if args.out and args.out != "-" else None
    json_path = Path(args.json) if args.json else None
    heat_dir = Path(args.heatmaps) if args.heatmaps else None
    scan = scan_paths(args.inputs)
    missing = [s for s in scan.skipped if s.reason == "no such file or folder"]
    for s in scan.skipped:
        _say(f"skipped {s.path}: {s.reason}")
    if not scan.images:
        raise AllSightError(f"no image files found in {', '.join(args.inputs)}")
    groups = group_samples(args.inputs, scan.images)
    heat_targets = heatmap_targets(heat_dir, scan.images) if heat_dir is not None else {}
    db_path = _db_path(args.db) if args.db else None
    inputs: dict[str, Any] = {
        "images": scan.images, "folders": [Path(raw) for raw in args.inputs if os.path.isdir(raw)],
        "files": [Path(raw) for raw in args.inputs if os.path.lexists(raw) and not os.path.isdir(raw)]}
    protected = model_files(args.model)
    # Before anything slow: one clear error, nothing written, nothing classified.
    if db_path is not None:  # the database is written too: not onto an input
        OutputGuard(**inputs, protected=protected).check([Output("--db", db_path)])
        protected += [("the result database", Path(f"{db_path}{suffix}")) for suffix in ("", "-wal", "-shm")]
    guard = OutputGuard(**inputs, protected=protected)
    guard.check(_planned_outputs(args, groups, heat_dir, heat_targets))
    if out_path is not None:
        check_writable(out_path, "CSV file", create_folders=False)
    if json_path is not None:
        check_writable(json_path, "JSON file", create_folders=False)
    if report_path is not None:
        check_writable(report_path, "PDF report")
    if heat_dir is not None:
        check_writable(heat_dir, "heat-map folder", folder=True)

    from engine.core.records import CSV_COLUMNS
    from engine.inference.classifier import Classifier  # ONNX Runtime or torch: only once the inputs are known
    from engine.reports.files import AtomicFile

    # The network loads in the background while the first batches are decoded.
    classifier = Classifier(args.model, device=args.device, backend=args.backend, background=True)

    store = None
    sinks: list[AtomicFile] = []  # the CSV and JSON, under temporary names until the run is complete
    running: Iterator[ImageResult] | None = None
    results: Iterator[ImageResult] | None = None
    tally: Counter[str] = Counter()
    actor = ""  # who the store records (with --db): the OS login or the signed-in account
    try:
        entries = [_Entry(p) for p in scan.images]
        plans: list[SamplePlan] = []
        if db_path is not None:
            from cli.signin import acting_user
            from engine.store.results import ResultStore

            store = ResultStore.open(db_path)
            actor = acting_user(store, args)  # signs in first where the lab requires accounts
            entries, plans = _prepare_store(store, groups, scan.images, classifier.card, args.operator or actor,
                                            actor)
            if report_path is not None:  # a sample ID the store changed changes its PDF's name
                guard.check(_planned_outputs(args, groups, heat_dir, heat_targets))
        todo = [e.path for e in entries if e.stored is None and e.refused is None]
        if todo and store is not None:
            from engine.workflow.classification import classify_samples

            running = _recorded(classify_samples(store, classifier, plans, order=todo, actor=actor,
                                                 batch_size=args.batch_size, workers=args.workers), tally)
        elif todo:
            running = classifier.classify_paths(todo, batch_size=args.batch_size, workers=args.workers)
        if running is not None:
            # The first result waits for the model: a missing or corrupt model fails here,
            # before any output file is touched. Decoding has been running meanwhile.
            results = itertools.chain([next(running)], running)
        else:
            classifier.wait_ready()
        # The CSV and JSON are written under temporary names beside their targets and renamed
        # into place together at the end: a failure leaves the files that were there untouched.
        csv_sink = AtomicFile(out_path, "CSV file", create_folders=False) if out_path is not None else None
        if csv_sink is not None:
            sinks.append(csv_sink)
        json_sink = AtomicFile(json_path, "JSON file", create_folders=False) if json_path is not None else None
        if json_sink is not None:
            sinks.append(json_sink)
        if heat_dir is not None:
            try:
                heat_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AllSightError(f"cannot create the heat-map folder {heat_dir}: {exc.strerror or exc}") from None
        run = _Run(args, entries, classifier, csv_sink or sys.stdout, json_sink, heat_dir, CSV_COLUMNS, store,
                   groups, tally, heat_targets, actor=actor)
        code = run.execute(results)
        for sink in sinks:
            sink.prepare()  # everything written and synced (a full disk fails here) before any is renamed
        for sink in sinks:
            sink.commit()
        sinks.clear()
        run.print_outputs()
        if report_path is not None:
            written = run.write_reports(report_path, groups)
            for path in written:
                _say(f"report: {path}", run.info)
        code = max(code, EXIT_PARTIAL if missing else EXIT_OK)
        return code
    finally:
        close = getattr(running, "close", None)
        if close is not None:
            close()  # stops the workers if the run ended early
        for sink in sinks:
            sink.abort()  # the run did not finish: no temporary file left, the old files untouched
        if store is not None:
            store.close()


def _prepare_store(store: ResultStore, groups: list[SampleGroup], images: tuple[Path, ...], card: ModelCard,
                   operator: str, actor: str) -> tuple[list[_Entry], list[SamplePlan]]:
    """Register each sample, add its images and plan it (:func:`engine.workflow.classification.prepare_sample`):
    per image, classify or read back. Returns one entry per scanned image, in scan order, and the plans."""
    from engine.workflow.classification import prepare_sample

    by_path: dict[Path, _Entry] = {}
    plans: list[SamplePlan] = []
    _say(f"result store: {store.path}")
    used: set[str] = set()
    for g in groups:
        sample, _ = store.register_sample(g.sample_id, g.folder, operator=operator, taken=used, actor=actor)
        if sample.sample_id != g.sample_id:
            _say(f"note: sample {g.sample_id!r} of the result store holds another folder; "
                 f"{g.folder or 'these files'} are sample {sample.sample_id!r}")
            g.sample_id = sample.sample_id
        used.add(g.sample_id)
        plan = prepare_sample(store, g.sample_id, g.paths, card.weights_sha256, actor=actor)
        plans.append(plan)
        if plan.signed_off:
            _say(f"sample {g.sample_id}: signed off by {sample.signed_off_by} at {sample.signed_off_at}; "
                 f"not changed, its stored results are output as they are")
            if plan.changed:  # the signed record no longer describes the files on disk
                _say(f"WARNING: sample {g.sample_id}: {len(plan.changed)} of its image file(s) changed on disk "
                     f"after it was signed off (first: {plan.changed[0]}); the signed results describe the "
                     "files as they were")
        n_stored = n_refused = 0
        for p in g.paths:
            entry = by_path[p] = _Entry(p, g.sample_id)
            key = image_key(p)
            if key in plan.stored:
                entry.stored = plan.stored[key].as_result(p)
                n_stored += 1
            elif key in plan.refused:
                entry.refused = plan.refusal(key)
                n_refused += 1
        n_todo = len(g.paths) - n_stored - n_refused
        line = (f"sample {g.sample_id}: {len(g.paths)} image(s), {n_stored} already in the result store, "
                f"{n_todo} to classify")
        if n_refused:
            line += f", {n_refused} not added (signed off)"
        _say(line)
    return [by_path[p] for p in images], plans


def _recorded(events: Iterator[ImageClassified], tally: Counter[str]) -> Generator[ImageResult, None, None]:
    """The results of the classification service, counting what it recorded and saying once per
    sample when the store refused it (signed off while this run was going)."""
    told: set[str] = set()
    try:
        for event in events:
            tally["recorded"] += event.recorded
            if event.refusal and event.sample_id not in told:
                told.add(event.sample_id)
                _say(f"sample {event.sample_id}: {event.refusal}; its remaining results are not recorded")
            yield event.result
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


class _Run:
    """One pass over the scanned images: classify what is needed, write every output row."""

    def __init__(self, args, entries, classifier, csv_file, json_file, heat_dir, columns, store,
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
        self.results: list[tuple[_Entry, Any]] = []  # for a report and the sample summaries
        self.tally = tally if tally is not None else Counter()  # "recorded": results committed by this run
        self.heat_failed = 0
        self.refused_samples: set[str] = set()
        self.bar: Any = PlainProgress()

    def execute(self, results: Iterator[Any] | None) -> int:
        """Write a row per entry; ``results`` yields the classified entries' results in order."""

        classifier = self.classifier
        card = classifier.card
        n_todo = sum(e.stored is None and e.refused is None for e in self.entries)
        n_stored = sum(e.stored is not None for e in self.entries)
        print(f"model {card.id} {card.version} (sha256 {card.weights_sha256[:12]}) on {classifier.runtime}; "
              f"{len(self.entries)} image(s)" + (f", {n_todo} to classify" if self.store is not None else ""),
              file=sys.stderr)
        writer = csv.DictWriter(self.csv_file, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        if self.to_stdout:
            self.csv_file.flush()

        counts = {c: 0 for c in card.classes}
        n_ok = n_error = n_review = n_ood = n_withheld = 0
        records: list[dict[str, Any]] = []
        gen = results
        bar = self.bar = progress_bar(len(self.entries))
        try:
            for entry in self.entries:
                if entry.refused is not None:
                    from engine.core.records import ImageResult

                    result = ImageResult(str(entry.path), "error", error=entry.refused)
                elif entry.stored is not None:
                    result = entry.stored
                else:
                    result = next(gen)  # type: ignore[arg-type]
                row = result.csv_row()
                if self.rows_on_terminal:
                    row = {k: printable(v) for k, v in row.items()}
                writer.writerow(row)
                if self.to_stdout:
                    self.csv_file.flush()  # streamed: a pipe's reader sees each row as it comes
                record = result.to_dict()
                if self.store is not None:
                    record["sample_id"] = entry.sample_id
                    record["from_store"] = entry.stored is not None
                if result.ok:
                    n_ok += 1
                    if ReviewedImage.from_result(result).withheld:
                        n_withheld += 1  # the model cannot judge it: its class counts nowhere
                    else:
                        counts[result.predicted_class] = counts.get(result.predicted_class, 0) + 1
                    n_review += result.needs_review
                    n_ood += result.out_of_distribution
                    if self.heat_dir is not None:
                        target = self._write_heatmap(result)
                        if target is not None:
                            record["heatmap"] = str(target)
                else:
                    n_error += 1
                    if entry.stored is None and entry.refused is None:
                        bar.write(printable(f"failed: {result.path}: {result.error}"))
                if self.json_file is not None:
                    records.append(record)
                self.results.append((entry, result))
                bar.update(1)
        finally:
            bar.close()

        summary = {"n_images": n_ok + n_error, "counts": counts, "n_ok": n_ok, "n_error": n_error,
                   "n_needs_review": n_review, "n_ood": n_ood, "n_withheld": n_withheld}
        samples = self.sample_summaries()
        if self.json_file is not None:
            doc: dict[str, Any] = {
                "model": {"id": card.id, "version": card.version, "sha256": card.weights_sha256},
                "device": str(classifier.device),
                "backend": classifier.backend.name,
                "results": records,
                "summary": summary,
                "samples": samples,
            }
            if self.store is not None:
                doc["db"] = str(self.store.path)
            self.json_file.write(json.dumps(doc, indent=2) + "\n")
        info = self.info
        print(_summary(summary), file=info)
        for sample in samples:
            if sample["acquisition_warning"]:  # one prominent line per sample it concerns
                _say(f"WARNING: sample {sample['sample_id']}: {sample['acquisition_warning']} "
                     f"({sample['n_unlike_training']} of {sample['n_ok'] - sample['n_excluded']} images unlike the "
                     "training images); "
                     f"call withheld: {sample['call']}", info)
        if self.store is not None:
            _say(f"result store {self.store.path}: {self.tally['recorded']} new result(s) recorded, "
                 f"{n_stored} already there", info)
        return EXIT_PARTIAL if (n_error or self.heat_failed) else EXIT_OK

    def print_outputs(self) -> None:
        """Where the CSV, JSON and heat maps are (once they are in place)."""
        args, info = self.args, self.info
        if args.out and not self.to_stdout:
            _say(f"results: {args.out}", info)
        if self.json_file is not None:
            _say(f"json: {args.json}", info)
        if self.heat_dir is not None:
            _say(f"heat maps: {self.heat_dir}", info)

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

    # ---------------------------------------------------------------------------- reports
    def _heatmap_fn(self):
        if self.heat_dir is None:
            return None
        import cv2

        def heatmap(path: Path):
            written = self.heatmaps.get(image_key(path))
            if written is not None:
                bgr = cv2.imread(str(written))
                if bgr is not None:
                    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            return self.classifier.heatmap(path)[2]

        return heatmap

    def write_reports(self, report_path: Path, groups: list[SampleGroup]) -> list[Path]:
        from engine.reports.pdf import write_pdf
        from engine.reports.sample import ReportModelInfo, SampleReport, sample_report_from_store

        card = self.classifier.card
        lab, operator = self.args.lab_name or "", self.args.operator or ""
        heatmap_fn = self._heatmap_fn()
        if self.store is None:
            sample_id = groups[0].sample_id if len(groups) == 1 and groups[0].from_folder else RUN_SAMPLE_ID
            images = [ReviewedImage.from_result(result, position=i) for i, (_, result) in enumerate(self.results)]
            report = SampleReport(
                lab_name=lab, sample_id=sample_id, patient_id="", operator=operator, reviewer=None,
                signed_off_at=None, created_at=datetime.now().astimezone().isoformat(timespec="seconds"),
                images=tuple(images),
                model=ReportModelInfo(card.id, card.version, card.weights_sha256, card.preprocess))
            return [write_pdf(report, report_path, heatmap_fn=heatmap_fn)]
        written = []
        targets = report_targets(report_path, [g.sample_id for g in groups])
        for sample_id, target in targets.items():
            report = sample_report_from_store(self.store, sample_id, card=card, lab_name=lab, operator=operator)
            written.append(write_pdf(report, target, heatmap_fn=heatmap_fn))
            self.store.record_event("export", sample_id, actor=self.actor, kind="pdf", path=str(written[-1]))
        return written


_DESCRIPTION = """\
Classify image files and folders (searched recursively) and write one CSV row per image.

Result store (--db FILE): every result is committed to the result database as it arrives.
Each folder INPUT is one sample, its sample ID the folder's name; a folder whose name is
already the ID of another folder's sample (in the store or in this run) becomes "NAME (2)". Image files named directly form one sample named after their common
parent folder, or "loose-files" when they lie in different folders. Running the same command
again (e.g. after an interruption) classifies only the images that model has not classified
yet; the CSV/JSON still list every image once, in the usual order, stored results read back
from the store. A sample that is signed off is not changed: its stored results are output as
they are, and images not in it get an error row.

Report (--report FILE.pdf): without --db, one PDF of all images of the run (sample ID: the
folder's name when a single folder was given, else "classify-run"). With --db, one PDF per
sample, with the reviews from the store: FILE.pdf for a single sample, else
FILE-<sample ID>.pdf beside it. Failed images are listed with their reason. Grad-CAM
thumbnails only with --heatmaps. Research use only - not a medical device.

Outputs (checked before anything is classified; a clash is an error, exit 2, nothing
written): no output may be an input (an image found, a file named, an input folder, the
--db database, the model's files) or another output (--out, --json, each PDF, each heat
map). An output with an image file name (.png, .jpg, ...) may not lie inside an input
folder, nor may the --heatmaps folder: the next run would classify them as images of the
sample. Other files may (FOLDER/results.csv is fine). The CSV and JSON are written to
temporary files beside their targets and renamed into place together when the run is
complete: a failure (a full disk) leaves the files that were there untouched. CSV text
cells starting with = + - @, tab or CR get a leading ' (no spreadsheet formula); the JSON
keeps the exact values. Files larger than 64 MB ($ALLSIGHT_MAX_IMAGE_MB) are not read:
they get an error row.
"""


def _add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images and folders; write a CSV (and JSON, heat maps, PDF)",
                       description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    p.add_argument("--model", metavar="ID|PATH", help="shipped model id (default resnet18) or a .safetensors path")
    p.add_argument("--out", metavar="results.csv", help="CSV file, one row per image (default: standard output)")
    p.add_argument("--json", metavar="results.json", help="also write every result and a summary as JSON")
    p.add_argument("--heatmaps", metavar="DIR", help="write a Grad-CAM overlay DIR/<name>_gradcam.png per image "
                   "(<name>_2_gradcam.png... for repeated names; not inside an input folder) and show them in "
                   "the --report PDF")
    p.add_argument("--db", metavar="FILE", help="record every result in this result database (created if "
                   "needed; 'default' = the application's own database) and resume from it; a folder INPUT "
                   "is a sample named after the folder, loose files one sample named after their common "
                   f"parent folder or '{LOOSE_SAMPLE_ID}'")
    p.add_argument("--report", metavar="report.pdf", help="write a PDF sample report (with --db: one per "
                   "sample, <stem>-<sample ID>.pdf when there are several)")
    p.add_argument("--operator", default="", metavar="NAME",
                   help="who prepared the sample, as named on the report (default: who runs this); the store "
                        "records every change under the OS login or the signed-in --account, never this name")
    p.add_argument("--lab-name", default="", metavar="TEXT", help="lab name printed on the report")
    add_account_option(p)
    p.add_argument("--device", choices=[d.value for d in DeviceName], default=DeviceName.AUTO.value)
    p.add_argument("--backend", choices=[b.value for b in BackendName], default=BackendName.AUTO.value,
                   help="what runs the network: auto = ONNX Runtime on the CPU (exported from the "
                        "weights once and cached), torch on a GPU")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N")
    p.add_argument("--workers", type=_positive_int, default=2, metavar="N", help="image decoding threads")
    p.set_defaults(func=cmd_classify)


REGISTRARS = [_add_classify]
