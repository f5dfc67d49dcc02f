"""Export a sample's report (PDF, CSV or JSON) from the result store, in a worker thread.

:func:`build_report` turns the store's records of one sample into the plain input of
:mod:`engine.report` (:class:`engine.report.SampleReport`); :func:`export_sample` builds and
writes it, choosing the writer from the file's suffix. Both are plain functions (no Qt) so the
main window runs them in the worker pool and tests call them directly.

The sample-level call in the report is the one the app shows and the store audits at sign-off
(:func:`engine.sample_summary.summarize`), given to the report as its summary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("allsight.gui.export")

FORMATS = {".pdf": "write_pdf", ".csv": "write_csv", ".json": "write_json"}


def report_module():
    """``engine.report`` if it is installed and has what the export needs, else None."""
    try:
        from engine import report
    except ImportError:
        return None
    needed = ("SampleReport", "ReportImage", "ReportModelInfo", *FORMATS.values())
    return report if all(hasattr(report, name) for name in needed) else None


def export_available() -> bool:
    return report_module() is not None


def _report_image(report, record: Any):
    """One ReportImage; a reviewer's "Excluded" is kept if the report accepts it, otherwise the
    image is shown as reviewed-and-excluded in the reviewer field (and not counted in the
    summary, which comes from the app)."""
    from engine.errors import AllSightError
    from engine.store import EXCLUDED_CLASS

    reviewed = record.reviewed_by is not None
    final = record.final_class if reviewed else None
    kwargs = {"path": Path(record.path), "file_name": record.file_name, "status": record.status,
              "model_class": record.predicted_class if record.status == "ok" else None,
              "confidence": record.confidence, "needs_review": record.needs_review,
              "out_of_distribution": record.out_of_distribution, "final_class": final,
              "reviewed_by": record.reviewed_by, "overridden": bool(record.overridden), "error": record.error}
    if record.status != "ok" and final is not None and final != EXCLUDED_CLASS:
        kwargs["final_class"] = None
    try:
        return report.ReportImage(**kwargs)
    except AllSightError:
        if final != EXCLUDED_CLASS:
            raise
        kwargs.update(final_class=None, reviewed_by=f"{record.reviewed_by} (excluded)")
        return report.ReportImage(**kwargs)


def build_report(store: Any, sample_id: str, *, lab_name: str = "", model_card: Any = None):
    """The :class:`engine.report.SampleReport` of one sample as stored now."""
    from engine.errors import AllSightError
    from engine.preprocess import PreprocessConfig
    from engine.sample_summary import summarize

    report = report_module()
    if report is None:
        raise AllSightError("Report export is not available in this installation (engine.report is missing).")
    sample = store.get_sample(sample_id)
    if sample is None:
        raise AllSightError(f"No sample {sample_id!r} in the result history.")
    records = store.predictions(sample_id)
    if not records:
        raise AllSightError(f"Sample {sample_id} has not been classified yet: nothing to export.")
    images = [_report_image(report, r) for r in records]
    latest = records[-1]
    shas = {r.model_sha256 for r in records}
    if len(shas) > 1:
        log.warning("sample %s mixes predictions of %d model files; the report names the latest", sample_id,
                    len(shas))
    preprocess = PreprocessConfig()
    if model_card is not None and getattr(model_card, "weights_sha256", None) == latest.model_sha256:
        preprocess = model_card.preprocess
    model = report.ReportModelInfo(id=latest.model_id, version=latest.model_version, sha256=latest.model_sha256,
                                   preprocess=preprocess)
    # The store's records carry the reviewers' "Excluded", which ReportImage cannot: the counts
    # and the call come from the records (the same engine.sample_summary rule the report uses).
    s = summarize(records)
    top = max(s.counts.items(), key=lambda kv: kv[1]) if s.n_classified else None
    call_class = top[0] if top is not None and s.call_code != "INDETERMINATE" else None
    summary = {
        "call": f"{s.call} (research use only)", "call_rationale": s.rationale, "call_class": call_class,
        "call_code": s.call_code,
        "counts": dict(s.counts), "fractions": dict(s.fractions), "n_excluded": s.n_excluded,
        "n_classified": s.n_classified, "n_reviewed": s.n_reviewed, "n_overridden": s.n_overridden,
        "n_flagged_unreviewed": s.n_flagged_unreviewed,
    }
    return report.SampleReport(
        lab_name=lab_name, sample_id=sample.sample_id, patient_id=sample.patient_id, operator=sample.operator,
        reviewer=sample.signed_off_by, signed_off_at=sample.signed_off_at, created_at=sample.created_at,
        images=tuple(images), model=model, summary=summary)


def export_sample(store: Any, sample_id: str, path: str | Path, *, lab_name: str = "",
                  model_card: Any = None) -> Path:
    """Build the report and write it to ``path`` (format from the suffix: .pdf, .csv, .json)."""
    from engine.errors import AllSightError

    path = Path(path)
    writer_name = FORMATS.get(path.suffix.lower())
    if writer_name is None:
        raise AllSightError(f"{path}: unknown report format {path.suffix!r}; use .pdf, .csv or .json")
    report = report_module()
    rep = build_report(store, sample_id, lab_name=lab_name, model_card=model_card)
    getattr(report, writer_name)(rep, path)
    log.info("exported sample %s to %s", sample_id, path)
    return path
