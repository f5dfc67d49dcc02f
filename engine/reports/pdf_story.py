"""The content of the PDF sample report, section by section, as ReportLab flowables: the title,
the header fields, the summary (counts, call, flags), the model and software, the image table
(:mod:`engine.reports.pdf_image_table`) and the review and sign-off block.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine import CLASS_IDS
from engine.imaging.preprocess import PreprocessConfig
from engine.reports.pdf_fonts import ReportFonts
from engine.reports.pdf_image_table import image_table_section
from engine.reports.pdf_style import DASH, StoryStyle, format_percent, readable_time, story_style
from engine.reports.sample import NOTICE, SampleReport, display_name


def build_story(report: SampleReport, *, thumbnails: bool, heatmap_fn: Any, check: Callable[[], None],
                tick: Callable[[], None], fonts: ReportFonts) -> list:
    """Every flowable of the report, in page order. ``check`` and ``tick`` are called as the image
    table's thumbnails are made (to cancel, to count progress)."""
    st = story_style(fonts)
    return [
        *_title(report, st),
        _header_fields(report, st),
        *_summary_section(report, st),
        *_model_section(report, st),
        *image_table_section(report, st, thumbnails=thumbnails, heatmap_fn=heatmap_fn, check=check, tick=tick),
        _sign_off_section(report, st),
    ]


def _title(report: SampleReport, st: StoryStyle) -> list:
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Spacer

    lab = ParagraphStyle("lab", parent=st.body, fontSize=9, textColor=st.grey)
    return [
        st.para(f"{st.text(report.lab_name)}", lab),
        st.para("Sample report: B-ALL subtype screening", st.h1),
        st.para(f"<b>{st.text(NOTICE)}</b> The classification is a screening aid produced by software and "
                "must be interpreted by a qualified person together with all other findings.", st.small),
        Spacer(1, 6),
    ]


def _header_fields(report: SampleReport, st: StoryStyle) -> Any:
    """Who, what and when, as a table of two key-value pairs a row."""
    from reportlab.platypus import Table, TableStyle

    status = "final (signed off)" if report.signed_off else "preliminary (not signed off)"
    pairs = [
        ("Lab", report.lab_name), ("Sample ID", report.sample_id),
        ("Patient ID", report.patient_id), ("Report status", status),
        ("Operator", report.operator), ("Reviewer", report.reviewer or DASH),
        ("Created", readable_time(report.created_at)),
        ("Signed off", readable_time(report.signed_off_at) or "not signed off"),
        ("Report generated", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()),
        ("Images in sample", str(report.summary.get("n_images", len(report.images)))),
    ]
    rows = []
    for i in range(0, len(pairs), 2):
        row = []
        for key, value in pairs[i:i + 2]:
            row += [st.para(f"<b>{st.text(key)}</b>", st.body), st.para(st.text(value), st.body)]
        rows.append(row)
    info = Table(rows, colWidths=[0.17 * st.width, 0.33 * st.width] * 2)
    info.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOX", (0, 0), (-1, -1), 0.5, st.grid),
        ("LINEBELOW", (0, 0), (-1, -2), 0.25, st.grid), ("BACKGROUND", (0, 0), (0, -1), st.head_bg),
        ("BACKGROUND", (2, 0), (2, -1), st.head_bg), ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]))
    return info


def _summary_section(report: SampleReport, st: StoryStyle) -> list:
    """The counts table beside the call and the review figures."""
    from reportlab.platypus import Table, TableStyle

    outer = Table([[_counts_table(report, st), _call_column(report, st)]],
                  colWidths=[0.46 * st.width, 0.54 * st.width])
    outer.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
    return [st.para("Summary", st.h2), outer]


def _counts_table(report: SampleReport, st: StoryStyle) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    s = report.summary
    P, E, body = st.para, st.text, st.body
    counts, fractions = s.get("counts", {}), s.get("fractions", {})
    srows = [[P("<b>Class</b>", body), P("<b>Images</b>", body), P("<b>Fraction</b>", body)]]
    for c in CLASS_IDS:
        bold = c == s.get("call_class")
        name = E(display_name(c))
        srows.append([P(f"<b>{name}</b>" if bold else name, body), str(counts.get(c, 0)),
                      format_percent(fractions.get(c, 0.0))])
    # the images the fractions are over: not failed, excluded or withheld
    n_counted = int(s.get("n_classified", sum(counts.values())))
    srows.append([P("<b>Counted images</b>", body), str(n_counted), format_percent(1.0 if n_counted else 0.0)])
    # ... and every other image, so that the column adds up to the sample's images
    for label, key in (("Not counted until reviewed", "n_withheld"), ("Excluded by review", "n_excluded"),
                       ("Unreadable (not counted)", "n_error"), ("Not classified yet", "n_pending")):
        srows.append([P(E(label), body), str(int(s.get(key, 0))), ""])
    srows.append([P("<b>Images in the sample</b>", body), str(int(s.get("n_images", len(report.images)))), ""])
    ctable = Table(srows, colWidths=[0.25 * st.width, 0.09 * st.width, 0.1 * st.width])
    ctable.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), st.fonts.regular, 8.5), ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, st.grid),
        ("BACKGROUND", (0, 0), (-1, 0), st.head_bg), ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
        ("LINEABOVE", (0, 1 + len(CLASS_IDS)), (-1, 1 + len(CLASS_IDS)), 0.75, colors.black),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return ctable


def _call_column(report: SampleReport, st: StoryStyle) -> list:
    """A warning that withholds the call (if any), the call and why, and the review figures."""
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Spacer, Table, TableStyle

    s = report.summary
    P, E = st.para, st.text
    unreviewed = s.get("n_needs_review_unreviewed", 0)
    flags = [
        ("Images needing review", f"{s.get('n_needs_review', 0)}"
         + (f" ({unreviewed} not yet reviewed)" if s.get("n_needs_review") else "")),
        ("Out-of-distribution images", str(s.get("n_ood", 0))),
        ("Reviewed by a person", f"{s.get('n_reviewed', 0)} ({s.get('n_overridden', 0)} overridden)"),
    ]
    call_style = ParagraphStyle("call", parent=st.body, fontSize=9.5, leading=12)
    right: list = []
    warning = s.get("acquisition_warning")
    if s.get("n_pending"):  # no call on a half-classified sample: said as prominently as a warning
        warning = f"Incomplete: {s['n_pending']} of {s.get('n_images', 0)} images not classified yet"
    if warning:  # one prominent line, above the call it withholds
        red = colors.Color(0.72, 0.11, 0.11)
        warn_style = ParagraphStyle("warning", parent=st.body, fontName=st.fonts.bold, fontSize=10, leading=12.5,
                                    textColor=red, borderColor=red, borderWidth=0.75, borderPadding=3,
                                    backColor=colors.Color(1.0, 0.93, 0.93))
        right += [P(f"{E(warning)}.", warn_style), Spacer(1, 7)]
    right += [P(f"<b>Call:</b> {E(s.get('call', ''))}", call_style),
              Spacer(1, 3), P(E(s.get("call_rationale", "")), st.small), Spacer(1, 5)]
    ftable = Table([[P(E(k), st.small), P(f"<b>{E(v)}</b>", st.small)] for k, v in flags],
                   colWidths=[0.27 * st.width, 0.25 * st.width])
    ftable.setStyle(TableStyle([
        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("LINEBELOW", (0, 0), (-1, -1), 0.25, st.grid),
    ]))
    right.append(ftable)
    return right


def _preprocess_text(cfg: PreprocessConfig) -> str:
    """The model's preprocessing settings on one line, its LAB colour ranges last."""
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


def _model_section(report: SampleReport, st: StoryStyle) -> list:
    from reportlab.platypus import Table, TableStyle

    P, E, small = st.para, st.text, st.small
    m = report.model
    mrows = [
        [P("<b>Model</b>", small), P(f"{E(m.id)}, version {E(m.version)}", small)],
        [P("<b>Weights SHA-256</b>", small), P(f'<font face="Courier">{E(m.sha256)}</font>', small)],
        [P("<b>Preprocessing</b>", small), P(E(_preprocess_text(m.preprocess)), small)],
        [P("<b>Software</b>", small), P(f"ALLSight {E(report.software_version)}", small)],
    ]
    mt = Table(mrows, colWidths=[0.17 * st.width, 0.83 * st.width])
    mt.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, st.grid),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return [P("Model and software", st.h2), mt]


def _sign_off_text(report: SampleReport, st: StoryStyle) -> str:
    E = st.text
    if report.signed_off:
        signed = (f"Reviewed and signed off by <b>{E(report.reviewer or DASH)}</b> "
                  f"on <b>{E(readable_time(report.signed_off_at))}</b>.")
        if report.sign_off_statement:
            signed += f"<br/>Statement signed: \u201c{E(report.sign_off_statement)}\u201d"
        return signed
    return ("<b>Not signed off.</b> This is a preliminary result"
            + (f"; reviewer: {E(report.reviewer)}." if report.reviewer else "."))


def _sign_off_section(report: SampleReport, st: StoryStyle) -> Any:
    """Who signed off and what, and lines to sign on paper; kept together on one page."""
    from reportlab.lib import colors
    from reportlab.platypus import KeepTogether, Spacer, Table, TableStyle

    P, E, body = st.para, st.text, st.body
    sig_rows = [
        [P("<b>Reviewed / signed by</b>", body), P(E(report.reviewer or ""), body),
         P("<b>Date</b>", body), P(E(readable_time(report.signed_off_at)), body)],
        [P("<b>Signature</b>", body), "", "", ""],
    ]
    w = st.width
    sig = Table(sig_rows, colWidths=[0.22 * w, 0.38 * w, 0.1 * w, 0.3 * w], rowHeights=[None, 34])
    sig.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, 0), "TOP"), ("VALIGN", (0, 1), (-1, 1), "BOTTOM"),
        ("LINEBELOW", (1, 0), (1, 0), 0.5, st.grey), ("LINEBELOW", (3, 0), (3, 0), 0.5, st.grey),
        ("LINEBELOW", (1, 1), (-1, 1), 0.75, colors.black), ("SPAN", (1, 1), (-1, 1)),
    ]))
    return KeepTogether([P("Review and sign-off", st.h2), P(_sign_off_text(report, st), body), Spacer(1, 6), sig,
                         Spacer(1, 6), P(E(NOTICE), st.small)])
