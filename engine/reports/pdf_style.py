"""The look of the PDF report's text, shared by its sections: paragraph styles, colours, the width
text may fill, and how text, percentages and times are written into a paragraph.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from engine.reports.pdf_fonts import ReportFonts
from engine.reports.pdf_page import MARGIN

#: What a cell with nothing to show holds.
DASH = "\u2014"


@dataclass(frozen=True)
class StoryStyle:
    """The styles (ReportLab ``ParagraphStyle``) and colours every section of one report uses."""

    fonts: ReportFonts
    body: Any
    small: Any
    cell: Any
    h1: Any
    h2: Any
    grey: Any
    grid: Any
    head_bg: Any
    #: Points between the left and right margins.
    width: float

    def text(self, value: Any) -> str:
        """``value`` as paragraph markup: showable in the fonts, ``<`` and ``&`` escaped."""
        return escape(self.fonts.fix(value))

    def para(self, markup: str, style: Any = None) -> Any:
        """A paragraph of ``markup`` (already escaped), in the table-cell style unless told."""
        from reportlab.platypus import Paragraph

        return Paragraph(markup, self.cell if style is None else style)


def story_style(fonts: ReportFonts) -> StoryStyle:
    """The report's styles set in ``fonts``. ReportLab is imported lazily: only the PDF writer needs it."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=fonts.regular, fontSize=8.5, leading=10.5,
                          spaceBefore=0, spaceAfter=0)
    return StoryStyle(
        fonts=fonts,
        body=body,
        small=ParagraphStyle("small", parent=body, fontSize=7.5, leading=9),
        cell=ParagraphStyle("cell", parent=body, fontSize=7, leading=8.5),
        h1=ParagraphStyle("h1", parent=base["Title"], fontName=fonts.bold, fontSize=15, leading=18,
                          alignment=0, spaceAfter=2),
        h2=ParagraphStyle("h2", parent=base["Heading2"], fontName=fonts.bold, fontSize=10.5, leading=13,
                          spaceBefore=9, spaceAfter=4),
        grey=colors.Color(0.45, 0.45, 0.45),
        grid=colors.Color(0.75, 0.75, 0.75),
        head_bg=colors.Color(0.90, 0.92, 0.95),
        width=A4[0] - 2 * MARGIN,
    )


def format_percent(fraction: float | None) -> str:
    """``0.253`` as ``"25.3%"``; nothing for ``None``."""
    return "" if fraction is None else f"{100.0 * fraction:.1f}%"


def readable_time(iso: str | None) -> str:
    """An ISO 8601 timestamp as people read it, in this computer's time zone, with the zone
    ("2026-12-01 14:32 CET"); text that is not a timestamp is shown as it is."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is None:  # a naive time is taken as this computer's
        when = when.astimezone()
    return when.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
