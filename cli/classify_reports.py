"""``classify --report``: the PDF sample reports of a finished run. Without ``--db`` one PDF of
every image of the run; with ``--db`` one per sample, with the reviews from the store, each export
recorded in the store's audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cli.classify_plan import SampleGroup, report_targets
from cli.classify_run import ClassifyRun
from engine.core.records import ReviewedImage
from engine.store.naming import image_key

#: Sample ID of a ``--report`` without ``--db`` that covers more than one folder (or loose files).
RUN_SAMPLE_ID = "classify-run"


def _heatmap_fn(run: ClassifyRun) -> Callable[[Path], Any] | None:
    """The reports' Grad-CAM column (only with --heatmaps): the overlay the run wrote, read back,
    else made anew."""
    if run.heat_dir is None:
        return None
    import cv2

    def heatmap(path: Path):
        written = run.heatmaps.get(image_key(path))
        if written is not None:
            bgr = cv2.imread(str(written))
            if bgr is not None:
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return run.classifier.heatmap(path)[2]

    return heatmap


def _run_report(run: ClassifyRun, groups: list[SampleGroup]) -> Any:
    """Without --db: one report of every image of the run, not reviewed, not signed off."""
    from engine.reports.sample import ReportModelInfo, SampleReport

    card = run.classifier.card
    sample_id = groups[0].sample_id if len(groups) == 1 and groups[0].from_folder else RUN_SAMPLE_ID
    images = [ReviewedImage.from_result(result, position=i) for i, (_, result) in enumerate(run.results)]
    return SampleReport(
        lab_name=run.args.lab_name or "", sample_id=sample_id, patient_id="", operator=run.args.operator or "",
        reviewer=None, signed_off_at=None, created_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        images=tuple(images),
        model=ReportModelInfo(card.id, card.version, card.weights_sha256, card.preprocess))


def write_reports(run: ClassifyRun, report_path: Path, groups: list[SampleGroup]) -> list[Path]:
    """Write the run's PDF report(s) to ``report_path`` (with --db, one per sample beside it);
    returns the paths written."""
    from engine.reports.pdf import write_pdf
    from engine.reports.sample import sample_report_from_store

    card = run.classifier.card
    lab, operator = run.args.lab_name or "", run.args.operator or ""
    heatmap_fn = _heatmap_fn(run)
    if run.store is None:
        return [write_pdf(_run_report(run, groups), report_path, heatmap_fn=heatmap_fn)]
    written = []
    targets = report_targets(report_path, [g.sample_id for g in groups])
    for sample_id, target in targets.items():
        report = sample_report_from_store(run.store, sample_id, card=card, lab_name=lab, operator=operator)
        written.append(write_pdf(report, target, heatmap_fn=heatmap_fn))
        run.store.record_event("export", sample_id, actor=run.actor, kind="pdf", path=str(written[-1]))
    return written
