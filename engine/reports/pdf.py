"""The PDF sample report's writer: ReportLab's platypus on A4, written atomically, cancellable,
with progress as the rows with thumbnails are drawn.

Thumbnails are made per row while the page is drawn (64 px JPEGs in memory; the full-size image
is dropped at once), so memory stays bounded for samples of thousands of images. What the report
shows is :mod:`engine.reports.pdf_story`; its page, fonts and thumbnails are
:mod:`engine.reports.pdf_page`, :mod:`engine.reports.pdf_fonts` and :mod:`engine.reports.pdf_images`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.reports.files import atomic_write, cancel_check
from engine.reports.pdf_fonts import choose_fonts
from engine.reports.pdf_page import FRAME_PAD, MARGIN, numbered_canvas
from engine.reports.pdf_story import build_story
from engine.reports.sample import NOTICE, ReportError, SampleReport


def write_pdf(report: SampleReport, path: str | Path, *, thumbnails: bool = True,
              heatmap_fn: Callable[[Path], np.ndarray | None] | None = None, cancel: Any = None,
              progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the sample report as an A4 PDF, atomically; returns ``path``.

    ``thumbnails``: show each image and its masked version (made with the model's own
    preprocessing). ``heatmap_fn(path)`` returns a Grad-CAM overlay (RGB uint8, any size) for the
    Grad-CAM column; without it the column shows "—". ``cancel``: a ``CancelToken`` or a callable
    returning True to stop (raises :class:`~engine.core.errors.Cancelled`; nothing is written).
    ``progress(done, total)`` is called as rows with thumbnails are drawn.
    Raises :class:`ReportError` when the file cannot be written.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate

    if not isinstance(report, SampleReport):
        raise ReportError(f"write_pdf needs a SampleReport, got {type(report).__name__}")
    check = cancel_check(cancel)
    check()
    fonts = choose_fonts(report)
    total = sum(im.ok for im in report.images) if (thumbnails or heatmap_fn) else 0
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    def render(fh: BinaryIO) -> None:
        doc = SimpleDocTemplate(
            fh, pagesize=A4, leftMargin=MARGIN - FRAME_PAD, rightMargin=MARGIN - FRAME_PAD,
            topMargin=MARGIN - 2, bottomMargin=MARGIN + 2,
            title=f"ALLSight sample report {report.sample_id}", author=report.lab_name,
            subject=f"Sample {report.sample_id}, patient {report.patient_id}. {NOTICE}",
            creator=f"ALLSight {report.software_version}",
        )
        story = build_story(report, thumbnails=thumbnails, heatmap_fn=heatmap_fn, check=check, tick=tick,
                            fonts=fonts)
        doc.build(story, canvasmaker=numbered_canvas(report, fonts, check))

    return atomic_write(path, render, "PDF report")


__all__ = ["write_pdf"]
