"""The page of the PDF sample report: its margins, and the canvas that draws what every page
carries (the research-use notice and "Page X of Y" at the foot, the sample and patient at the
head of every page after the first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.reports.pdf_fonts import ReportFonts
from engine.reports.sample import NOTICE, SampleReport

MARGIN = 36.0  # points (half an inch): where text starts
FRAME_PAD = 6.0  # platypus frames pad their content by 6 pt


def numbered_canvas(report: SampleReport, fonts: ReportFonts, check: Callable[[], None]):
    """The canvas class for ``doc.build(canvasmaker=...)``; ``check()`` runs before each page is kept
    (to cancel). ReportLab is imported lazily: only the PDF writer needs it."""
    from reportlab.pdfgen import canvas as rl_canvas

    header = fonts.fix(f"ALLSight sample report \u2014 sample {report.sample_id} "
                       f"\u2014 patient {report.patient_id}")

    class NumberedCanvas(rl_canvas.Canvas):
        """Defers each page so that the footer can say "Page X of Y"."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):
            check()
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            self._pages = []
            super().save()

        def _decorate(self, total: int) -> None:
            from reportlab.lib.pagesizes import A4

            width, height = A4
            page = self._pageNumber
            self.saveState()
            self.setStrokeGray(0.6)
            self.setLineWidth(0.5)
            self.line(MARGIN, 30, width - MARGIN, 30)
            self.setFont(fonts.bold, 7.5)
            self.setFillGray(0.1)
            self.drawString(MARGIN, 20, NOTICE)
            self.setFont(fonts.regular, 7.5)
            self.drawRightString(width - MARGIN, 20, f"Page {page} of {total}")
            if page > 1:
                self.setFillGray(0.35)
                self.drawString(MARGIN, height - 26, header)
                self.line(MARGIN, height - 30, width - MARGIN, height - 30)
            self.restoreState()

    return NumberedCanvas
