"""The fonts of the PDF sample report: the PDF core fonts when every text of the report fits them,
else a system TrueType font, registered with ReportLab once per process.

The core fonts embed nothing and are fast, but show only Windows-1252; a patient ID in Cyrillic
needs a real font. When none is found the text is still written, with "?" for what cannot be shown.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from engine.reports.sample import SampleReport

# The PDF writer's one logger, whichever of its modules logs (engine.reports.pdf).
log = logging.getLogger("engine.reports.pdf")

#: TrueType fonts (regular, bold) tried, in order, when a report holds text the PDF core fonts
#: cannot show (anything outside Windows-1252: Cyrillic, Greek, CJK names...). ``ALLSIGHT_REPORT_FONT``
#: (and optionally ``ALLSIGHT_REPORT_FONT_BOLD``) may name another TTF file.
_UNICODE_FONTS: list[tuple[str, str]] = [
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf"),
    (os.path.join(os.environ.get("WINDIR", r"C:\Windows"), "Fonts", "arial.ttf"),
     os.path.join(os.environ.get("WINDIR", r"C:\Windows"), "Fonts", "arialbd.ttf")),
    ("/System/Library/Fonts/Supplemental/Arial.ttf", "/System/Library/Fonts/Supplemental/Arial Bold.ttf"),
    ("/Library/Fonts/Arial Unicode.ttf", "/Library/Fonts/Arial Unicode.ttf"),
]
# ReportLab's font registry is process-wide: two reports written at once register the font once.
_font_lock = threading.Lock()
#: (regular, bold) names once registered; ("", "") when no usable font was found; None: not tried yet.
_registered_font: tuple[str, str] | None = None


@dataclass(frozen=True)
class ReportFonts:
    """The fonts a report's text is set in, and how its text is made showable in them."""

    regular: str = "Helvetica"
    bold: str = "Helvetica-Bold"
    #: Applied to every text: identity, or (core fonts) replace what they cannot show with "?".
    unicode: bool = False

    def fix(self, text: Any) -> str:
        text = str(text)
        if self.unicode:
            return text
        return text.encode("cp1252", "replace").decode("cp1252")


def _needs_unicode(report: SampleReport) -> bool:
    texts = [report.lab_name, report.sample_id, report.patient_id, report.operator, report.reviewer or "",
             report.signed_off_at or "", report.sign_off_statement or "", report.created_at, report.software_version, report.model.id,
             report.model.version, str(report.summary.get("call", "")),
             str(report.summary.get("call_rationale", ""))]
    for im in report.images:
        texts += [im.file_name, im.error or "", im.reviewed_by or ""]
    try:
        "\n".join(texts).encode("cp1252")
        return False
    except UnicodeEncodeError:
        return True


def _register_first_usable_font() -> tuple[str, str]:
    """Register the first TTF pair that loads (``ALLSIGHT_REPORT_FONT`` first); ("", "") if none does."""
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    env = os.environ.get("ALLSIGHT_REPORT_FONT")
    candidates = ([(env, os.environ.get("ALLSIGHT_REPORT_FONT_BOLD") or env)] if env else [])
    for regular, bold in candidates + _UNICODE_FONTS:
        if not os.path.isfile(regular):
            continue
        try:
            pdfmetrics.registerFont(TTFont("ALLSightSans", regular))
            bold_file = bold if os.path.isfile(bold) else regular
            pdfmetrics.registerFont(TTFont("ALLSightSans-Bold", bold_file))
        except Exception as exc:  # noqa: BLE001 - a broken font file: try the next one
            log.warning("report: cannot use font %s: %s", regular, exc)
            continue
        # <b> and <i> in a paragraph look the family up by these mappings
        for bold_flag, italic, name in ((0, 0, "ALLSightSans"), (1, 0, "ALLSightSans-Bold"),
                                        (0, 1, "ALLSightSans"), (1, 1, "ALLSightSans-Bold")):
            addMapping("ALLSightSans", bold_flag, italic, name)
        return ("ALLSightSans", "ALLSightSans-Bold")
    return ("", "")


def choose_fonts(report: SampleReport) -> ReportFonts:
    """Core fonts (fast, nothing embedded) unless the report needs more; then a system TTF."""
    global _registered_font
    if not _needs_unicode(report):
        return ReportFonts()
    with _font_lock:
        if _registered_font is None:
            _registered_font = _register_first_usable_font()
    if not _registered_font[0]:
        log.warning("report: no Unicode font found; characters outside Latin-1 are shown as '?'")
        return ReportFonts()
    return ReportFonts(*_registered_font, unicode=True)
