"""The image table of the PDF sample report: one row per image (its thumbnails, the model's class
and confidence, the reviewer's class, its flags), and the legend of the flags the rows show.

An image not classified yet or unreadable gets one spanning cell saying so; an image flagged for
review or unlike the training images is shaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.core.flags import FlagReason, normalize
from engine.core.records import EXCLUDED_CLASS, ImageStatus, ReviewedImage
from engine.reports.pdf_images import THUMB_PT, RowImages, thumb_flowable
from engine.reports.pdf_style import DASH, StoryStyle, format_percent
from engine.reports.sample import SampleReport, display_name

#: Longest error reason printed in the PDF (the exports keep the full text).
MAX_REASON_CHARS = 400

_THUMB_TITLES = {"original": "Image", "masked": "Masked", "heatmap": "Grad-CAM"}
#: Widths (points) of the columns that do not stretch; the file name takes what is left.
_FIXED_WIDTHS = {"#": 22.0, "Model class": 74.0, "Conf.": 36.0, "Reviewer's class": 100.0, "Flags": 50.0}
_TAIL = ["Model class", "Conf.", "Reviewer's class", "Flags"]


@dataclass(frozen=True)
class _Columns:
    """The table's columns: which thumbnails it shows, their titles and widths."""

    #: Thumbnail columns shown, in order ("original", "masked", "heatmap").
    kinds: tuple[str, ...]
    #: Of those, the ones there is something to draw for (no Grad-CAM without a heat-map function).
    make_kinds: tuple[str, ...]
    names: list[str]
    widths: list[float]


def _columns(width: float, thumbnails: bool, heatmap_fn: Any) -> _Columns:
    kinds: list[str] = []
    if thumbnails:
        kinds += ["original", "masked", "heatmap"]
    elif heatmap_fn is not None:
        kinds += ["heatmap"]
    make_kinds = tuple(k for k in kinds if k != "heatmap" or heatmap_fn is not None)
    thumb_w = THUMB_PT + 6
    file_w = width - sum(_FIXED_WIDTHS.values()) - thumb_w * len(kinds)
    names = ["#", "File"] + [_THUMB_TITLES[k] for k in kinds] + _TAIL
    widths = [_FIXED_WIDTHS["#"], file_w] + [thumb_w] * len(kinds) + [_FIXED_WIDTHS[c] for c in names[2 + len(kinds):]]
    return _Columns(tuple(kinds), make_kinds, names, widths)


def _base_style(cols: _Columns, st: StoryStyle) -> list:
    """The table's style commands before any row adds its own (spans, shading)."""
    style: list = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, st.grid),
        ("BACKGROUND", (0, 0), (-1, 0), st.head_bg), ("FONT", (0, 0), (-1, -1), st.fonts.regular, 7),
        ("ALIGN", (0, 0), (0, -1), "RIGHT"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if cols.kinds:
        first, last = 2, 1 + len(cols.kinds)
        style += [("ALIGN", (first, 1), (last, -1), "CENTER"), ("LEFTPADDING", (first, 1), (last, -1), 2),
                  ("RIGHTPADDING", (first, 1), (last, -1), 2)]
    conf_col = 2 + len(cols.kinds) + 1
    style.append(("ALIGN", (conf_col, 1), (conf_col, -1), "RIGHT"))
    return style


def _review_cell(im: ReviewedImage, st: StoryStyle) -> Any:
    if im.reviewed:
        verb = "overridden" if im.overridden else "confirmed"
        by = f" by {st.text(im.reviewed_by)}" if im.reviewed_by else ""
        return st.para(f"<b>{st.text(display_name(im.final_class))}</b><br/>{verb}{by}")
    return st.para('<font color="#777777">not reviewed</font>')


def _flag_marks(im: ReviewedImage, st: StoryStyle) -> Any:
    # Short labels only (the legend below the table has the sentences); never the distance.
    marks = [st.text(r.label) for r in im.flags]
    if not marks:
        if im.out_of_distribution:
            marks.append("out of distribution")
        elif im.needs_review:
            marks.append("needs review")
    if im.withheld:
        marks.append("<i>not counted</i>")
    return st.para("<br/>".join(marks) or DASH)


class _Rows:
    """The table's rows and style commands, added image by image."""

    def __init__(self, report: SampleReport, st: StoryStyle, cols: _Columns, heatmap_fn: Any,
                 check: Callable[[], None], tick: Callable[[], None]) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle

        self.report, self.st, self.cols = report, st, cols
        self.heatmap_fn, self.check, self.tick = heatmap_fn, check, tick
        self.thumb = thumb_flowable(st.fonts)
        self.review_bg = colors.Color(1.0, 0.97, 0.85)
        self.error_bg = colors.Color(1.0, 0.91, 0.91)
        head = ParagraphStyle("head", parent=st.cell, fontName=st.fonts.bold)
        self.data: list[list] = [[st.para(st.text(c), head) for c in cols.names]]
        self.style = _base_style(cols, st)
        self.seen_flags: set[FlagReason] = set()

    def add(self, number: int, im: ReviewedImage) -> None:
        name = self.st.para(self.st.text(im.file_name))
        if im.status == ImageStatus.PENDING:
            self._spanning(number, name, "<i>Not classified yet</i>")
        elif not im.ok:
            self._unreadable(number, name, im)
        else:
            self._classified(number, name, im)

    def _spanning(self, number: int, name: Any, markup: str) -> int:
        """A row whose text spans every column after the file name; returns its index."""
        r = len(self.data)
        self.data.append([str(number), name, self.st.para(markup)] + [""] * (len(self.cols.names) - 3))
        self.style += [("SPAN", (2, r), (-1, r))]
        return r

    def _unreadable(self, number: int, name: Any, im: ReviewedImage) -> None:
        E = self.st.text
        reason = im.error or "unknown error"
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[:MAX_REASON_CHARS] + "\u2026"
        verdict = f" \u2014 excluded by {E(im.reviewed_by or 'the reviewer')}" if im.final_class == EXCLUDED_CLASS else ""
        r = self._spanning(number, name, f"<b>Unreadable \u2014 not classified:</b> {E(reason)}{verdict}")
        self.style += [("BACKGROUND", (0, r), (-1, r), self.error_bg)]

    def _thumbs(self, im: ReviewedImage) -> list:
        kinds, make_kinds = self.cols.kinds, self.cols.make_kinds
        if not kinds:
            return []
        row_images = RowImages(im.path, self.report.model.preprocess, self.heatmap_fn, make_kinds, self.check,
                               self.tick) if make_kinds else None
        return [self.thumb(row_images, k) if k in make_kinds else DASH for k in kinds]

    def _classified(self, number: int, name: Any, im: ReviewedImage) -> None:
        st = self.st
        r = len(self.data)
        thumbs = self._thumbs(im)
        self.seen_flags.update(im.flags)
        self.data.append([str(number), name, *thumbs, st.para(st.text(display_name(im.predicted_class))),
                          format_percent(im.confidence) or DASH, _review_cell(im, st), _flag_marks(im, st)])
        if im.needs_review or im.out_of_distribution:
            self.style.append(("BACKGROUND", (0, r), (-1, r), self.review_bg))

    def table(self) -> Any:
        from reportlab.platypus import Table, TableStyle

        if len(self.data) == 1:
            self.data.append(["", self.st.para("No images in this sample.")] + [""] * (len(self.cols.names) - 2))
            self.style.append(("SPAN", (1, 1), (-1, 1)))
        table = Table(self.data, colWidths=self.cols.widths, repeatRows=1)
        table.setStyle(TableStyle(self.style))
        return table


def _flag_legend(seen_flags: set[FlagReason], st: StoryStyle) -> list:
    from reportlab.platypus import Spacer

    if not seen_flags:
        return []
    legend = "<br/>".join(f"<b>{st.text(r.label)}</b>: {st.text(r.sentence)}." for r in normalize(seen_flags))
    return [Spacer(1, 4),
            st.para("<b>Flags.</b> An image flagged as one the model cannot judge is not counted "
                    "in the summary until a person has reviewed it.<br/>" + legend, st.small)]


def image_table_section(report: SampleReport, st: StoryStyle, *, thumbnails: bool, heatmap_fn: Any,
                        check: Callable[[], None], tick: Callable[[], None]) -> list:
    """The "Images" heading, the table of every image, and the legend of the flags it shows."""
    rows = _Rows(report, st, _columns(st.width, thumbnails, heatmap_fn), heatmap_fn, check, tick)
    for number, im in enumerate(report.images, 1):
        rows.add(number, im)
    return [st.para(f"Images ({len(report.images)})", st.h2), rows.table(), *_flag_legend(rows.seen_flags, st)]
