"""The Results tab's sample summary: counts and fractions per class, the sample-level call and
its rationale (:func:`engine.core.summary.summarize`), and how many images need a look.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    Qt,
)
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine import CLASS_IDS
from engine.core.records import EXCLUDED_CLASS
from gui import theme
from gui.results_table import class_name
from gui.theme import Tone

if TYPE_CHECKING:
    from engine.core.summary import SampleSummary


def _call_tone(code: str) -> Tone:
    if code.startswith("ALL_"):
        return Tone.ERROR
    if code == "BENIGN":
        return Tone.OK
    return Tone.WARNING


class SummaryBox(QGroupBox):
    """Counts and fractions per class, the call and its rationale, and what still needs a look."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Sample summary", parent)
        self.call_label = QLabel(self)
        font = self.call_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.call_label.setFont(font)
        self.call_label.setWordWrap(True)
        self.warning_label = QLabel(self)  # the acquisition warning: one prominent line, else hidden
        self.warning_label.setWordWrap(True)
        theme.style_sheet(self.warning_label, lambda: theme.box_style(Tone.ROW_ERROR, Tone.ERROR, Tone.ERROR,
                                                                      "padding: 3px; font-weight: bold;"))
        self.warning_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.warning_label.hide()
        self.rationale_label = QLabel(self)
        self.rationale_label.setWordWrap(True)
        theme.style(self.rationale_label, Tone.MUTED)
        self.rationale_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note_label = QLabel("Research use only — not a diagnosis. A qualified person must review the images.",
                                 self)
        theme.style(self.note_label, Tone.NOTE, "font-size: 11px;")
        self.note_label.setWordWrap(True)

        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(3)
        for col, text in enumerate(("Class", "Images", "Fraction", "Model said")):
            head = QLabel(f"<b>{text}</b>", self)
            theme.style(head, Tone.MUTED)
            grid.addWidget(head, 0, col, Qt.AlignmentFlag.AlignRight if col else Qt.AlignmentFlag.AlignLeft)
        self.count_labels: dict[str, tuple[QLabel, QLabel, QLabel]] = {}
        for row, cls in enumerate((*CLASS_IDS, EXCLUDED_CLASS), start=1):
            grid.addWidget(QLabel(class_name(cls), self), row, 0)
            row_labels = tuple(QLabel("", self) for _ in range(3))
            for col, label in enumerate(row_labels, start=1):
                grid.addWidget(label, row, col, Qt.AlignmentFlag.AlignRight)
            self.count_labels[cls] = row_labels  # type: ignore[assignment]
        grid.setColumnStretch(4, 1)
        self.flags_label = QLabel(self)
        self.flags_label.setWordWrap(True)
        self.flags_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.call_label)
        layout.addWidget(self.rationale_label)
        layout.addLayout(grid)
        layout.addWidget(self.flags_label)
        layout.addWidget(self.note_label)
        self.summary = None
        self._shown: tuple[int, int] = (0, 0)  # set_summary's n_images, n_pending
        self.set_summary(None)
        theme.follow(self, self._palette_changed)  # the counts line's rich text names colours

    def _palette_changed(self) -> None:
        self.set_summary(self.summary, *self._shown)

    def set_summary(self, summary: SampleSummary | None, n_images: int = 0, n_pending: int = 0) -> None:
        """Show ``engine.core.summary.SampleSummary`` (None: nothing classified yet)."""
        self.summary, self._shown = summary, (n_images, n_pending)
        if summary is None:
            self.call_label.setText("Not classified yet")
            theme.style(self.call_label, Tone.MUTED)
            self.rationale_label.setText(
                f"{n_images} image(s). Press Classify to classify them." if n_images else "No sample selected.")
            for row_labels in self.count_labels.values():
                for label in row_labels:
                    label.setText("")
            self.flags_label.setText("")
            self.warning_label.setText("")
            self.warning_label.hide()
            return
        warning = summary.acquisition_warning
        if summary.n_pending:  # the call waits for every image: said as prominently as a warning
            warning = f"Incomplete: {summary.n_pending} of {summary.n_images} images not classified yet"
        # Only what changed is set: each setText/setStyleSheet on a word-wrapped label relayouts
        # the panel, and this runs for every batch of results (measured: 57-172 ms stalls).
        set_text_if_changed(self.warning_label, f"⚠ {html.escape(warning)}." if warning else "")
        if self.warning_label.isVisibleTo(self) != bool(warning):
            self.warning_label.setVisible(bool(warning))
        set_text_if_changed(self.call_label, html.escape(summary.call))
        theme.style(self.call_label, _call_tone(summary.call_code))
        set_text_if_changed(self.rationale_label, summary.rationale)
        for cls, (count, frac, model) in self.count_labels.items():
            if cls == EXCLUDED_CLASS:
                set_text_if_changed(count, str(summary.n_excluded))
                set_text_if_changed(frac, "")
                set_text_if_changed(model, "")
            else:
                set_text_if_changed(count, str(summary.counts.get(cls, 0)))
                set_text_if_changed(frac, f"{100 * summary.fractions.get(cls, 0.0):.0f} %" if summary.n_classified else "—")
                set_text_if_changed(model, str(summary.model_counts.get(cls, 0)))
        # the same accounting as the PDF and the JSON (engine.core.summary.SampleSummary)
        parts = [f"{summary.n_images} images", f"{summary.n_classified} counted"]
        if summary.n_pending:
            parts.append(f"<b>{summary.n_pending} not classified yet</b>")
        if summary.n_excluded:
            parts.append(f"{summary.n_excluded} excluded")
        if summary.n_error:
            parts.append(theme.span(Tone.ERROR, f"{summary.n_error} unreadable"))
        parts.append(f"{summary.n_needs_review} need review")
        parts.append(f"{summary.n_ood} OOD")
        if summary.n_withheld:
            parts.append(theme.span(Tone.WARNING, f"<b>{summary.n_withheld} not counted (cannot be judged, "
                                                  "not reviewed)</b>"))
        parts.append(f"{summary.n_reviewed} reviewed ({summary.n_overridden} overridden)")
        left = summary.n_flagged_unreviewed
        if left:
            parts.append(theme.span(Tone.WARNING, f"<b>{left} flagged left to review</b>"))
        elif summary.n_pending:
            parts.append("no flagged image left to review so far")
        else:
            parts.append(theme.span(Tone.OK, "all flagged images reviewed"))
        set_text_if_changed(self.flags_label, " · ".join(parts))


def set_text_if_changed(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)
