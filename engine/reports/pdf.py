"""The PDF sample report, built with ReportLab's platypus on A4.

Thumbnails are made per row while the page is drawn (64 px JPEGs in memory; the full-size image
is dropped at once), so memory stays bounded for samples of thousands of images.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

import numpy as np

from engine import CLASS_IDS
from engine.core.errors import AllSightError, Cancelled
from engine.core.flags import (
    FlagReason,
    normalize,
)
from engine.core.records import EXCLUDED_CLASS, ImageStatus
from engine.imaging.preprocess import PreprocessConfig
from engine.reports.files import atomic_write, cancel_check
from engine.reports.sample import NOTICE, ReportError, SampleReport, display_name

log = logging.getLogger(__name__)

#: Thumbnail size in pixels (JPEG in memory) and as drawn in the PDF (points; 1 pt = 1/72 in).
THUMB_PX = 64
THUMB_PT = 40.0
#: Longest error reason printed in the PDF (the exports keep the full text).
MAX_REASON_CHARS = 400


# ======================================================================================= PDF
def _thumb_jpeg(rgb: np.ndarray, size: int = THUMB_PX) -> bytes:
    import cv2
    from PIL import Image

    rgb = np.ascontiguousarray(rgb[..., :3]) if rgb.ndim == 3 else np.stack([rgb] * 3, axis=-1)
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale != 1.0:
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=80)
    return out.getvalue()


class _RowImages:
    """The thumbnails of one row, made on first use (when the row is drawn) and then dropped."""

    __slots__ = ("_jpegs", "_left", "_notes", "check", "config", "heatmap_fn", "kinds", "path", "tick")

    def __init__(self, path: str | Path, config: PreprocessConfig, heatmap_fn, kinds: tuple[str, ...],
                 check: Callable[[], None], tick: Callable[[], None]):
        self.path, self.config, self.heatmap_fn, self.kinds = path, config, heatmap_fn, kinds
        self.check, self.tick = check, tick
        self._jpegs: dict[str, bytes] | None = None
        self._notes: dict[str, str] = {}
        self._left = 0

    def _make(self) -> None:
        from engine.imaging.preprocess import preprocess
        from engine.io.images import load_image

        self.check()
        jpegs: dict[str, bytes] = {}
        notes: dict[str, str] = {}
        if "original" in self.kinds or "masked" in self.kinds:
            try:
                stages = preprocess(load_image(self.path), self.config)
                for kind in ("original", "masked"):
                    if kind in self.kinds:
                        jpegs[kind] = _thumb_jpeg(getattr(stages, kind))
                del stages
            except AllSightError as exc:
                log.warning("report: no thumbnail for %s: %s", self.path, exc)
                notes["original"] = notes["masked"] = "unavailable"
        if "heatmap" in self.kinds:
            try:
                heat = self.heatmap_fn(self.path)
                if heat is None:
                    notes["heatmap"] = "\u2014"
                else:
                    jpegs["heatmap"] = _thumb_jpeg(np.asarray(heat))
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed heat map must not lose the report
                log.warning("report: no Grad-CAM for %s: %s", self.path, exc)
                notes["heatmap"] = "unavailable"
        self._jpegs, self._notes, self._left = jpegs, notes, len(self.kinds)
        self.tick()

    def take(self, kind: str) -> bytes | str:
        """JPEG bytes, or a short note to print instead."""
        if self._jpegs is None:
            self._make()
        assert self._jpegs is not None
        result: bytes | str = self._jpegs.get(kind) or self._notes.get(kind, "unavailable")
        self._left -= 1
        if self._left <= 0:  # every cell of the row is drawn: free the thumbnails
            self._jpegs, self._notes = None, {}
        return result


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
_font_lock = threading.Lock()
_registered_font: tuple[str, str] | None = None


@dataclass(frozen=True)
class _Fonts:
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


def _choose_fonts(report: SampleReport) -> _Fonts:
    """Core fonts (fast, nothing embedded) unless the report needs more; then a system TTF."""
    global _registered_font
    if not _needs_unicode(report):
        return _Fonts()
    with _font_lock:
        if _registered_font is None:
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
                for bold_flag, italic, name in ((0, 0, "ALLSightSans"), (1, 0, "ALLSightSans-Bold"),
                                                (0, 1, "ALLSightSans"), (1, 1, "ALLSightSans-Bold")):
                    addMapping("ALLSightSans", bold_flag, italic, name)
                _registered_font = ("ALLSightSans", "ALLSightSans-Bold")
                break
            else:
                _registered_font = ("", "")
    if not _registered_font[0]:
        log.warning("report: no Unicode font found; characters outside Latin-1 are shown as '?'")
        return _Fonts()
    return _Fonts(*_registered_font, unicode=True)


def _pdf_classes(fonts: _Fonts):
    """ReportLab is imported lazily: only the PDF writer needs it."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas as rl_canvas
    from reportlab.platypus import Flowable

    class Thumb(Flowable):
        def __init__(self, row: _RowImages, kind: str):
            super().__init__()
            self.row, self.kind = row, kind

        def wrap(self, avail_width, avail_height):
            return THUMB_PT, THUMB_PT

        def draw(self):
            item = self.row.take(self.kind)
            c = self.canv
            if isinstance(item, bytes):
                c.drawImage(ImageReader(io.BytesIO(item)), 0, 0, THUMB_PT, THUMB_PT,
                            preserveAspectRatio=True, anchor="c")
            else:
                c.setFont(fonts.regular, 6.5)
                c.setFillGray(0.4)
                c.drawCentredString(THUMB_PT / 2, THUMB_PT / 2 - 2, item)

    def numbered_canvas(report: SampleReport, check: Callable[[], None]):
        header = fonts.fix(f"ALLSight sample report \u2014 sample {report.sample_id} "
                           f"\u2014 patient {report.patient_id}")

        class NumberedCanvas(rl_canvas.Canvas):
            """Defers each page so that the footer can say "Page X of Y"."""

            def __init__(self, *args, **kwargs):
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
                self.line(_MARGIN, 30, width - _MARGIN, 30)
                self.setFont(fonts.bold, 7.5)
                self.setFillGray(0.1)
                self.drawString(_MARGIN, 20, NOTICE)
                self.setFont(fonts.regular, 7.5)
                self.drawRightString(width - _MARGIN, 20, f"Page {page} of {total}")
                if page > 1:
                    self.setFillGray(0.35)
                    self.drawString(_MARGIN, height - 26, header)
                    self.line(_MARGIN, height - 30, width - _MARGIN, height - 30)
                self.restoreState()

        return NumberedCanvas

    return Thumb, numbered_canvas


_MARGIN = 36.0  # points (half an inch): where text starts
_FRAME_PAD = 6.0  # platypus frames pad their content by 6 pt


def _fmt_pct(fraction: float | None) -> str:
    return "" if fraction is None else f"{100.0 * fraction:.1f}%"


def _preprocess_text(cfg: PreprocessConfig) -> str:
    parts = []
    for name, value in cfg.to_dict().items():
        if name == "color_ranges":
            continue
        if isinstance(value, (tuple, list)):
            value = "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + ")"
        parts.append(f"{name}={value}")
    ranges = "; ".join(
        f"{r.name} " + " ".join(f"{ch}{lo}\u2013{hi}" for ch, lo, hi in zip("Lab", r.lower, r.upper, strict=False))
        for r in cfg.color_ranges
    )
    return ", ".join(parts) + (f"; LAB colour ranges: {ranges}" if ranges else "")


def _story(report: SampleReport, *, thumbnails: bool, heatmap_fn, check, tick, Thumb,
           fonts: _Fonts) -> list:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=fonts.regular, fontSize=8.5, leading=10.5,
                          spaceBefore=0, spaceAfter=0)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9)
    cell = ParagraphStyle("cell", parent=body, fontSize=7, leading=8.5)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=fonts.bold, fontSize=15, leading=18,
                        alignment=0, spaceAfter=2)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=fonts.bold, fontSize=10.5, leading=13,
                        spaceBefore=9, spaceAfter=4)
    grey = colors.Color(0.45, 0.45, 0.45)
    grid = colors.Color(0.75, 0.75, 0.75)
    head_bg = colors.Color(0.90, 0.92, 0.95)
    width = A4[0] - 2 * _MARGIN
    s = report.summary
    def E(text):
        return escape(fonts.fix(text))

    def P(text: str, style=cell) -> Paragraph:
        return Paragraph(text, style)

    story: list = []
    story.append(P(f"{E(report.lab_name)}", ParagraphStyle("lab", parent=body, fontSize=9, textColor=grey)))
    story.append(P("Sample report: B-ALL subtype screening", h1))
    story.append(P(f"<b>{E(NOTICE)}</b> The classification is a screening aid produced by software and "
                   "must be interpreted by a qualified person together with all other findings.", small))
    story.append(Spacer(1, 6))

    # ---------------------------------------------------------------- header fields
    status = "final (signed off)" if report.signed_off else "preliminary (not signed off)"
    pairs = [
        ("Lab", report.lab_name), ("Sample ID", report.sample_id),
        ("Patient ID", report.patient_id), ("Report status", status),
        ("Operator", report.operator), ("Reviewer", report.reviewer or "\u2014"),
        ("Created", readable_time(report.created_at)),
        ("Signed off", readable_time(report.signed_off_at) or "not signed off"),
        ("Report generated", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()),
        ("Images in sample", str(s.get("n_images", len(report.images)))),
    ]
    rows = []
    for i in range(0, len(pairs), 2):
        row = []
        for key, value in pairs[i:i + 2]:
            row += [P(f"<b>{E(key)}</b>", body), P(E(value), body)]
        rows.append(row)
    info = Table(rows, colWidths=[0.17 * width, 0.33 * width] * 2)
    info.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOX", (0, 0), (-1, -1), 0.5, grid),
        ("LINEBELOW", (0, 0), (-1, -2), 0.25, grid), ("BACKGROUND", (0, 0), (0, -1), head_bg),
        ("BACKGROUND", (2, 0), (2, -1), head_bg), ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]))
    story.append(info)

    # ---------------------------------------------------------------- summary
    story.append(P("Summary", h2))
    counts, fractions = s.get("counts", {}), s.get("fractions", {})
    srows = [[P("<b>Class</b>", body), P("<b>Images</b>", body), P("<b>Fraction</b>", body)]]
    for c in CLASS_IDS:
        bold = c == s.get("call_class")
        name = E(display_name(c))
        srows.append([P(f"<b>{name}</b>" if bold else name, body), str(counts.get(c, 0)),
                      _fmt_pct(fractions.get(c, 0.0))])
    # the images the fractions are over: not failed, excluded or withheld
    n_counted = int(s.get("n_classified", sum(counts.values())))
    srows.append([P("<b>Counted images</b>", body), str(n_counted), _fmt_pct(1.0 if n_counted else 0.0)])
    # ... and every other image, so that the column adds up to the sample's images
    for label, key in (("Not counted until reviewed", "n_withheld"), ("Excluded by review", "n_excluded"),
                       ("Unreadable (not counted)", "n_error"), ("Not classified yet", "n_pending")):
        srows.append([P(E(label), body), str(int(s.get(key, 0))), ""])
    srows.append([P("<b>Images in the sample</b>", body), str(int(s.get("n_images", len(report.images)))), ""])
    ctable = Table(srows, colWidths=[0.25 * width, 0.09 * width, 0.1 * width])
    ctable.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), fonts.regular, 8.5), ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, grid),
        ("BACKGROUND", (0, 0), (-1, 0), head_bg), ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
        ("LINEABOVE", (0, 1 + len(CLASS_IDS)), (-1, 1 + len(CLASS_IDS)), 0.75, colors.black),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    unreviewed = s.get("n_needs_review_unreviewed", 0)
    flags = [
        ("Images needing review", f"{s.get('n_needs_review', 0)}"
         + (f" ({unreviewed} not yet reviewed)" if s.get("n_needs_review") else "")),
        ("Out-of-distribution images", str(s.get("n_ood", 0))),
        ("Reviewed by a person", f"{s.get('n_reviewed', 0)} ({s.get('n_overridden', 0)} overridden)"),
    ]
    call_style = ParagraphStyle("call", parent=body, fontSize=9.5, leading=12)
    right: list = []
    warning = s.get("acquisition_warning")
    if s.get("n_pending"):  # no call on a half-classified sample: said as prominently as a warning
        warning = f"Incomplete: {s['n_pending']} of {s.get('n_images', 0)} images not classified yet"
    if warning:  # one prominent line, above the call it withholds
        red = colors.Color(0.72, 0.11, 0.11)
        warn_style = ParagraphStyle("warning", parent=body, fontName=fonts.bold, fontSize=10, leading=12.5,
                                    textColor=red, borderColor=red, borderWidth=0.75, borderPadding=3,
                                    backColor=colors.Color(1.0, 0.93, 0.93))
        right += [P(f"{E(warning)}.", warn_style), Spacer(1, 7)]
    right += [P(f"<b>Call:</b> {E(s.get('call', ''))}", call_style),
              Spacer(1, 3), P(E(s.get("call_rationale", "")), small), Spacer(1, 5)]
    ftable = Table([[P(E(k), small), P(f"<b>{E(v)}</b>", small)] for k, v in flags],
                   colWidths=[0.27 * width, 0.25 * width])
    ftable.setStyle(TableStyle([
        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("LINEBELOW", (0, 0), (-1, -1), 0.25, grid),
    ]))
    right.append(ftable)
    outer = Table([[ctable, right]], colWidths=[0.46 * width, 0.54 * width])
    outer.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
    story.append(outer)

    # ---------------------------------------------------------------- model
    story.append(P("Model and software", h2))
    m = report.model
    mrows = [
        [P("<b>Model</b>", small), P(f"{E(m.id)}, version {E(m.version)}", small)],
        [P("<b>Weights SHA-256</b>", small), P(f'<font face="Courier">{E(m.sha256)}</font>', small)],
        [P("<b>Preprocessing</b>", small), P(E(_preprocess_text(m.preprocess)), small)],
        [P("<b>Software</b>", small), P(f"ALLSight {E(report.software_version)}", small)],
    ]
    mt = Table(mrows, colWidths=[0.17 * width, 0.83 * width])
    mt.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, grid),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    story.append(mt)

    # ---------------------------------------------------------------- images
    story.append(P(f"Images ({len(report.images)})", h2))
    kinds: list[str] = []
    if thumbnails:
        kinds += ["original", "masked", "heatmap"]
    elif heatmap_fn is not None:
        kinds += ["heatmap"]
    make_kinds = tuple(k for k in kinds if k != "heatmap" or heatmap_fn is not None)
    thumb_titles = {"original": "Image", "masked": "Masked", "heatmap": "Grad-CAM"}
    fixed = {"#": 22.0, "Model class": 74.0, "Conf.": 36.0, "Reviewer's class": 100.0, "Flags": 50.0}
    thumb_w = THUMB_PT + 6
    file_w = width - sum(fixed.values()) - thumb_w * len(kinds)
    tail = ["Model class", "Conf.", "Reviewer's class", "Flags"]
    columns = ["#", "File"] + [thumb_titles[k] for k in kinds] + tail
    widths = [fixed["#"], file_w] + [thumb_w] * len(kinds) + [fixed[c] for c in columns[2 + len(kinds):]]
    head = ParagraphStyle("head", parent=cell, fontName=fonts.bold)
    data: list[list] = [[P(E(c), head) for c in columns]]
    style: list = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, grid),
        ("BACKGROUND", (0, 0), (-1, 0), head_bg), ("FONT", (0, 0), (-1, -1), fonts.regular, 7),
        ("ALIGN", (0, 0), (0, -1), "RIGHT"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if kinds:
        first, last = 2, 1 + len(kinds)
        style += [("ALIGN", (first, 1), (last, -1), "CENTER"), ("LEFTPADDING", (first, 1), (last, -1), 2),
                  ("RIGHTPADDING", (first, 1), (last, -1), 2)]
    conf_col = 2 + len(kinds) + 1
    style.append(("ALIGN", (conf_col, 1), (conf_col, -1), "RIGHT"))
    review_bg = colors.Color(1.0, 0.97, 0.85)
    error_bg = colors.Color(1.0, 0.91, 0.91)
    dash = "\u2014"
    seen_flags: set[FlagReason] = set()
    for i, im in enumerate(report.images, 1):
        r = len(data)
        name = P(E(im.file_name), cell)
        if im.status == ImageStatus.PENDING:
            data.append([str(i), name, P("<i>Not classified yet</i>", cell)] + [""] * (len(columns) - 3))
            style += [("SPAN", (2, r), (-1, r))]
            continue
        if not im.ok:
            reason = im.error or "unknown error"
            if len(reason) > MAX_REASON_CHARS:
                reason = reason[:MAX_REASON_CHARS] + "\u2026"
            verdict = f" \u2014 excluded by {E(im.reviewed_by or 'the reviewer')}" if im.final_class == EXCLUDED_CLASS else ""
            data.append([str(i), name, P(f"<b>Unreadable \u2014 not classified:</b> {E(reason)}{verdict}", cell)]
                        + [""] * (len(columns) - 3))
            style += [("SPAN", (2, r), (-1, r)), ("BACKGROUND", (0, r), (-1, r), error_bg)]
            continue
        thumbs: list = []
        if kinds:
            row_images = _RowImages(im.path, report.model.preprocess, heatmap_fn, make_kinds, check, tick) \
                if make_kinds else None
            for k in kinds:
                thumbs.append(Thumb(row_images, k) if k in make_kinds else dash)
        if im.reviewed:
            verb = "overridden" if im.overridden else "confirmed"
            by = f" by {E(im.reviewed_by)}" if im.reviewed_by else ""
            final = P(f"<b>{E(display_name(im.final_class))}</b><br/>{verb}{by}", cell)
        else:
            final = P('<font color="#777777">not reviewed</font>', cell)
        # Short labels only (the legend below the table has the sentences); never the distance.
        marks = [E(r.label) for r in im.flags]
        if not marks:
            if im.out_of_distribution:
                marks.append("out of distribution")
            elif im.needs_review:
                marks.append("needs review")
        if im.withheld:
            marks.append("<i>not counted</i>")
        seen_flags.update(im.flags)
        data.append([str(i), name, *thumbs, P(E(display_name(im.predicted_class)), cell),
                     _fmt_pct(im.confidence) or dash, final, P("<br/>".join(marks) or dash, cell)])
        if im.needs_review or im.out_of_distribution:
            style.append(("BACKGROUND", (0, r), (-1, r), review_bg))
    if len(data) == 1:
        data.append(["", P("No images in this sample.", cell)] + [""] * (len(columns) - 2))
        style.append(("SPAN", (1, 1), (-1, 1)))
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle(style))
    story.append(table)
    if seen_flags:
        legend = "<br/>".join(f"<b>{E(r.label)}</b>: {E(r.sentence)}." for r in normalize(seen_flags))
        story.append(Spacer(1, 4))
        story.append(P("<b>Flags.</b> An image flagged as one the model cannot judge is not counted "
                       "in the summary until a person has reviewed it.<br/>" + legend, small))

    # ---------------------------------------------------------------- signature
    if report.signed_off:
        signed = (f"Reviewed and signed off by <b>{E(report.reviewer or dash)}</b> "
                  f"on <b>{E(readable_time(report.signed_off_at))}</b>.")
        if report.sign_off_statement:
            signed += f"<br/>Statement signed: \u201c{E(report.sign_off_statement)}\u201d"
    else:
        signed = ("<b>Not signed off.</b> This is a preliminary result"
                  + (f"; reviewer: {E(report.reviewer)}." if report.reviewer else "."))
    sig_rows = [
        [P("<b>Reviewed / signed by</b>", body), P(E(report.reviewer or ""), body),
         P("<b>Date</b>", body), P(E(readable_time(report.signed_off_at)), body)],
        [P("<b>Signature</b>", body), "", "", ""],
    ]
    sig = Table(sig_rows, colWidths=[0.22 * width, 0.38 * width, 0.1 * width, 0.3 * width],
                rowHeights=[None, 34])
    sig.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, 0), "TOP"), ("VALIGN", (0, 1), (-1, 1), "BOTTOM"),
        ("LINEBELOW", (1, 0), (1, 0), 0.5, grey), ("LINEBELOW", (3, 0), (3, 0), 0.5, grey),
        ("LINEBELOW", (1, 1), (-1, 1), 0.75, colors.black), ("SPAN", (1, 1), (-1, 1)),
    ]))
    story.append(KeepTogether([P("Review and sign-off", h2), P(signed, body), Spacer(1, 6), sig,
                               Spacer(1, 6), P(E(NOTICE), small)]))
    return story



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
    fonts = _choose_fonts(report)
    Thumb, numbered_canvas = _pdf_classes(fonts)
    total = sum(im.ok for im in report.images) if (thumbnails or heatmap_fn) else 0
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    def render(fh: BinaryIO) -> None:
        doc = SimpleDocTemplate(
            fh, pagesize=A4, leftMargin=_MARGIN - _FRAME_PAD, rightMargin=_MARGIN - _FRAME_PAD,
            topMargin=_MARGIN - 2, bottomMargin=_MARGIN + 2,
            title=f"ALLSight sample report {report.sample_id}", author=report.lab_name,
            subject=f"Sample {report.sample_id}, patient {report.patient_id}. {NOTICE}",
            creator=f"ALLSight {report.software_version}",
        )
        story = _story(report, thumbnails=thumbnails, heatmap_fn=heatmap_fn, check=check, tick=tick,
                       Thumb=Thumb, fonts=fonts)
        doc.build(story, canvasmaker=numbered_canvas(report, check))

    return atomic_write(path, render, "PDF report")


__all__ = ["write_pdf"]
