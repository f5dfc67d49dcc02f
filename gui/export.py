"""Export a sample's report (PDF, CSV or JSON) from the result store, in a worker thread.

:func:`build_report` turns the store's records of one sample into the plain input of the
report writers (:class:`engine.reports.sample.SampleReport`); :func:`export_sample` builds and
writes it, choosing the writer from the file's suffix. Both are plain functions (no Qt) so the
main window runs them in the worker pool and tests call them directly.

The sample-level call in the report is the one the app shows and the store audits at sign-off:
:class:`~engine.reports.sample.SampleReport` takes it from :func:`engine.core.summary.summarize`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.models.card import ModelCard
    from engine.reports.sample import SampleReport
    from engine.store.results import ResultStore

log = logging.getLogger("allsight.gui.export")

#: File suffix -> (engine module, writer): imported when used (ReportLab only for a PDF).
FORMATS = {".pdf": ("engine.reports.pdf", "write_pdf"), ".csv": ("engine.reports.tables", "write_csv"),
           ".json": ("engine.reports.tables", "write_json")}


def build_report(store: ResultStore, sample_id: str, *, lab_name: str = "",
                 model_card: ModelCard | None = None) -> SampleReport:
    """The :class:`engine.reports.sample.SampleReport` of one sample as stored now (each image's latest
    prediction; the active model's preprocessing is named when it made those predictions)."""
    from engine.reports.sample import sample_report_from_store

    records = store.predictions(sample_id)
    shas = {r.model_sha256 for r in records}
    if len(shas) > 1:
        log.warning("sample %s mixes predictions of %d model files; the report names the latest", sample_id,
                    len(shas))
    card = model_card
    if card is None or not records or card.weights_sha256 != records[-1].model_sha256 or len(shas) > 1:
        card = None
    return sample_report_from_store(store, sample_id, card=card, lab_name=lab_name)


def export_sample(store: ResultStore, sample_id: str, path: str | Path, *, lab_name: str = "",
                  model_card: ModelCard | None = None) -> Path:
    """Build the report and write it to ``path`` (format from the suffix: .pdf, .csv, .json)."""
    import importlib

    from engine.core.errors import AllSightError

    path = Path(path)
    writer = FORMATS.get(path.suffix.lower())
    if writer is None:
        raise AllSightError(f"{path}: unknown report format {path.suffix!r}; use .pdf, .csv or .json")
    rep = build_report(store, sample_id, lab_name=lab_name, model_card=model_card)
    module, name = writer
    getattr(importlib.import_module(module), name)(rep, path)
    log.info("exported sample %s to %s", sample_id, path)
    return path
