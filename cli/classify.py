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
sample named after their common parent folder (``loose-files`` when they have none in common). The results are committed to the store
as they arrive, a classifier batch (64 images) per transaction, so a run that is interrupted and started again classifies only what is missing
(:meth:`engine.store.results.ResultStore.pending_paths`), while its CSV/JSON still list every image once,
in the same order as a fresh run: results already stored are read back from the store. A sample
that is signed off is never changed: its stored results are output as they are.

This module checks the inputs and outputs, holds what a run opens and lets it go however the run
ends; the options are :mod:`cli.classify_args`, the store's side :mod:`cli.classify_store`, the
pass over the images :mod:`cli.classify_run`, the PDFs :mod:`cli.classify_reports`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.classify_args import add_classify_parser
from cli.classify_messages import EXIT_OK, EXIT_PARTIAL, say
from cli.classify_plan import SampleGroup, group_samples, heatmap_targets, report_targets
from cli.classify_reports import write_reports
from cli.classify_run import ClassifyRun
from cli.classify_store import ImageEntry, prepare_store, recorded, resolve_db_path, say_waiting
from cli.outputs import Output, OutputGuard, check_writable, model_files
from engine.core.errors import AllSightError

if TYPE_CHECKING:  # the engine's heavy modules load only once the inputs are known
    from engine.core.records import ImageResult
    from engine.reports.files import AtomicFile
    from engine.store.results import ResultStore
    from engine.workflow.classification import SamplePlan


@dataclass(frozen=True)
class _Paths:
    """The files and folder the options name (``--out -`` is standard output: no file)."""

    out: Path | None
    json: Path | None
    report: Path | None
    heatmaps: Path | None

    @classmethod
    def of(cls, args: argparse.Namespace) -> _Paths:
        return cls(out=Path(args.out) if args.out and args.out != "-" else None,
                   json=Path(args.json) if args.json else None,
                   report=Path(args.report) if args.report else None,
                   heatmaps=Path(args.heatmaps) if args.heatmaps else None)


@dataclass
class _Held:
    """What a run holds that must be let go however it ends (see :meth:`release`)."""

    store: ResultStore | None = None
    #: The CSV and JSON, under temporary names until the run is complete.
    sinks: list[AtomicFile] = field(default_factory=list)
    running: Iterator[ImageResult] | None = None

    def release(self) -> None:
        close = getattr(self.running, "close", None)
        if close is not None:
            close()  # stops the workers if the run ended early
        for sink in self.sinks:
            sink.abort()  # the run did not finish: no temporary file left, the old files untouched
        if self.store is not None:
            self.store.close()


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


def _check_outputs(args: argparse.Namespace, paths: _Paths, images: tuple[Path, ...], groups: list[SampleGroup],
                   heat_targets: dict[str, Path], db_path: Path | str | None) -> OutputGuard:
    """Before anything slow: one clear error, nothing written, nothing classified. Returns the
    guard, to check the report names again once the store has named the samples."""
    inputs: dict[str, Any] = {
        "images": images, "folders": [Path(raw) for raw in args.inputs if os.path.isdir(raw)],
        "files": [Path(raw) for raw in args.inputs if os.path.lexists(raw) and not os.path.isdir(raw)]}
    protected = model_files(args.model)
    if isinstance(db_path, Path):  # the database file is written too: not onto an input
        OutputGuard(**inputs, protected=protected).check([Output("--db", db_path)])
        protected += [("the result database", Path(f"{db_path}{suffix}")) for suffix in ("", "-wal", "-shm")]
    guard = OutputGuard(**inputs, protected=protected)
    guard.check(_planned_outputs(args, groups, paths.heatmaps, heat_targets))
    if paths.out is not None:
        check_writable(paths.out, "CSV file", create_folders=False)
    if paths.json is not None:
        check_writable(paths.json, "JSON file", create_folders=False)
    if paths.report is not None:
        check_writable(paths.report, "PDF report")
    if paths.heatmaps is not None:
        check_writable(paths.heatmaps, "heat-map folder", folder=True)
    return guard


@dataclass
class _Job:
    """A run as the command line asks for it: its inputs scanned, its outputs checked."""

    args: argparse.Namespace
    paths: _Paths
    images: tuple[Path, ...]
    groups: list[SampleGroup]
    heat_targets: dict[str, Path]  # image key -> its heat-map file
    db_path: Path | str | None  # a file, or a lab database's URL
    guard: OutputGuard
    #: A named input does not exist: exit 3 even when every image found is classified.
    missing: bool

    @classmethod
    def of(cls, args: argparse.Namespace) -> _Job:
        from engine.io.images import scan_paths

        paths = _Paths.of(args)
        scan = scan_paths(args.inputs)
        missing = [s for s in scan.skipped if s.reason == "no such file or folder"]
        for s in scan.skipped:
            say(f"skipped {s.path}: {s.reason}")
        if not scan.images:
            raise AllSightError(f"no image files found in {', '.join(args.inputs)}")
        groups = group_samples(args.inputs, scan.images)
        heat_targets = heatmap_targets(paths.heatmaps, scan.images) if paths.heatmaps is not None else {}
        db_path = resolve_db_path(args.db) if args.db else None
        guard = _check_outputs(args, paths, scan.images, groups, heat_targets, db_path)
        return cls(args, paths, scan.images, groups, heat_targets, db_path, guard, bool(missing))


def _add_sink(held: _Held, path: Path | None, what: str) -> AtomicFile | None:
    """A CSV or JSON file written under a temporary name beside ``path`` (none without ``path``)."""
    if path is None:
        return None
    from engine.reports.files import AtomicFile

    sink = AtomicFile(path, what, create_folders=False)
    held.sinks.append(sink)
    return sink


def _commit(held: _Held) -> None:
    """Rename the CSV and JSON into place together."""
    for sink in held.sinks:
        sink.prepare()  # everything written and synced (a full disk fails here) before any is renamed
    for sink in held.sinks:
        sink.commit()
    held.sinks.clear()


def _make_heat_dir(heat_dir: Path) -> None:
    try:
        heat_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AllSightError(f"cannot create the heat-map folder {heat_dir}: {exc.strerror or exc}") from None


def cmd_classify(args: argparse.Namespace) -> int:
    job = _Job.of(args)
    from engine.inference.classifier import Classifier  # ONNX Runtime or torch: only once the inputs are known

    # The network loads in the background while the first batches are decoded.
    classifier = Classifier(args.model, device=args.device, backend=args.backend, background=True,
                            precision=args.precision)
    held = _Held()
    try:
        return _classify(job, classifier, held)
    finally:
        held.release()


def _classify(job: _Job, classifier: Any, held: _Held) -> int:
    """Classify, write every output, and return the exit code; what it opens goes into ``held``."""
    from engine.core.records import CSV_COLUMNS

    args, paths = job.args, job.paths
    tally: Counter[str] = Counter()
    entries = [ImageEntry(p) for p in job.images]
    plans: list[SamplePlan] = []
    actor = ""  # who the store records (with --db): the OS login or the signed-in account
    if job.db_path is not None:
        from cli.signin import acting_user
        from engine.store.results import ResultStore

        store = held.store = ResultStore.open(job.db_path)
        actor = acting_user(store, args)  # signs in first where the lab requires accounts
        entries, plans = prepare_store(store, job.groups, job.images, classifier.card, args.operator or actor,
                                       actor)
        if paths.report is not None:  # a sample ID the store changed changes its PDF's name
            job.guard.check(_planned_outputs(args, job.groups, paths.heatmaps, job.heat_targets))
    results = _start(args, classifier, held, entries, plans, actor, tally)
    # The CSV and JSON are written under temporary names beside their targets and renamed
    # into place together at the end: a failure leaves the files that were there untouched.
    csv_sink = _add_sink(held, paths.out, "CSV file")
    json_sink = _add_sink(held, paths.json, "JSON file")
    if paths.heatmaps is not None:
        _make_heat_dir(paths.heatmaps)
    run = ClassifyRun(args, entries, classifier, csv_sink or sys.stdout, json_sink, paths.heatmaps, CSV_COLUMNS,
                      held.store, job.groups, tally, job.heat_targets, actor=actor)
    code = run.execute(results)
    _commit(held)
    run.print_outputs()
    if paths.report is not None:
        for path in write_reports(run, paths.report, job.groups):
            say(f"report: {path}", run.info)
    return max(code, EXIT_PARTIAL if job.missing else EXIT_OK)


def _start(args: argparse.Namespace, classifier: Any, held: _Held, entries: list[ImageEntry],
           plans: list[SamplePlan], actor: str, tally: Counter[str]) -> Iterator[ImageResult] | None:
    """Start classifying the images that need it (recorded in the store with --db); returns their
    results, or None when every result is known already."""
    todo = [e.path for e in entries if e.stored is None and e.refused is None]
    if todo and held.store is not None:
        from engine.workflow.classification import classify_samples

        held.running = recorded(classify_samples(held.store, classifier, plans, order=todo, actor=actor,
                                                 batch_size=args.batch_size, workers=args.workers,
                                                 waiting=say_waiting), tally)
    elif todo:
        held.running = classifier.classify_paths(todo, batch_size=args.batch_size, workers=args.workers)
    if held.running is None:
        classifier.wait_ready()
        return None
    # The first result waits for the model: a missing or corrupt model fails here,
    # before any output file is touched. Decoding has been running meanwhile.
    return itertools.chain([next(held.running)], held.running)


def _register(sub: argparse._SubParsersAction) -> None:
    """The ``classify`` subcommand (its options: :mod:`cli.classify_args`), run by :func:`cmd_classify`."""
    add_classify_parser(sub).set_defaults(func=cmd_classify)


REGISTRARS = [_register]
