"""The Results tab: one row per classified image, the sample summary, review and sign-off.

* Each row is an :class:`~engine.core.records.ReviewedImage` (the store's record, or one made from
  a fresh classifier result): the flag, withheld and override rules are that record's.
* :class:`~gui.results_table.ResultsModel` / :class:`~gui.results_table.ResultsFilter` — the table and its
  class/flag filter + sorting (:mod:`gui.results_table`).
* :class:`~gui.summary_box.SummaryBox` (:mod:`gui.summary_box`) — counts and fractions per class, the sample-level call and its rationale
  (:func:`engine.core.summary.summarize`), and how many images need a look.
* :class:`~gui.results_review.ReviewActions` (:mod:`gui.results_review`) — the review box and keys (Enter
  confirms the model's class, 1–4 pick Benign/Early/Pre/Pro, X excludes the image, N jumps to the
  next flagged image), the context menu, and what they do to the current row.
* :class:`ResultsPanel` — all of the above laid out, plus the Sign off / Reopen / Export buttons.

The panel never writes to the store itself: it emits requests that the main window carries out
(and then updates the rows), so every write goes through one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.core.jobs import JobState
from engine.core.records import ReviewedImage, sign_off_blockers
from gui import theme

if TYPE_CHECKING:
    from collections.abc import Callable

from gui.results_review import ReviewActions
from gui.results_table import (
    CLASS_FILTERS,
    COL_BY,
    COL_CLASS,
    COL_CONF,
    COL_FILE,
    COL_FINAL,
    COL_OOD,
    COL_OVERRIDDEN,
    COL_REVIEW,
    FLAG_FILTERS,
    ResultsFilter,
    ResultsModel,
    format_time,
)
from gui.summary_box import SummaryBox
from gui.theme import Tone

#: While a batch streams rows in, the summary is recomputed at most this often.
SUMMARY_REFRESH_MS = 300


class ResultsPanel(QWidget, ReviewActions):
    """Table + filters + summary + review controls + sign-off, for the selected sample."""

    #: The selected row changed (ReviewedImage or None).
    current_row_changed = Signal(object)
    #: (path, final class): the reviewer decided.
    review_requested = Signal(str, str)
    #: (path): the reviewer withdrew the image's review (it is "not reviewed" again).
    withdraw_requested = Signal(str)
    sign_off_requested = Signal()
    reopen_requested = Signal()
    export_requested = Signal()
    #: A short message for the status bar.
    status_message = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = ResultsModel(self)
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.locked = False
        self.n_images = 0
        self.summary = None
        #: Why the person may not "sign_off" or "reopen" ("" = may); set by gui.access_flow.
        self.refusal: Callable[[str], str] = lambda action: ""

        # Header
        self.title_label = QLabel("No sample selected", self)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.title_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Save this sample's report as PDF, CSV or JSON")
        self.export_button.clicked.connect(self.export_requested.emit)
        header = QHBoxLayout()
        header.addWidget(self.title_label, 1)
        header.addWidget(self.export_button)

        self.summary_box = SummaryBox(self)

        # Filters
        self.class_combo = QComboBox(self)
        for text, value in CLASS_FILTERS:
            self.class_combo.addItem(text, value)
        self.class_combo.setToolTip("Show one class only (the reviewer's class where reviewed)")
        self.flag_combo = QComboBox(self)
        for text, value in FLAG_FILTERS:
            self.flag_combo.addItem(text, value)
        self.class_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_class_filter(self.class_combo.currentData()))
        self.flag_combo.currentIndexChanged.connect(lambda _i: self._flag_filter_chosen())
        self.shown_label = QLabel(self)
        theme.style(self.shown_label, Tone.MUTED)
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Show", self))
        filters.addWidget(self.class_combo)
        filters.addWidget(self.flag_combo)
        filters.addStretch(1)
        filters.addWidget(self.shown_label)

        # Table
        self.table = QTableView(self)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "WBC-Mal…_0123.jpg": the number stays visible
        t = self.table
        t.setModel(self.proxy)
        t.setSortingEnabled(True)
        t.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setAlternatingRowColors(False)
        t.setWordWrap(False)
        t.verticalHeader().hide()
        t.verticalHeader().setDefaultSectionSize(22)
        t.horizontalHeader().setStretchLastSection(False)
        # The file name keeps a readable width (elided in the middle, so the number shows); the
        # reviewer's name takes what is left (a narrow panel scrolls instead of hiding the names).
        t.horizontalHeader().setSectionResizeMode(COL_BY, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_FILE, 132), (COL_CLASS, 100), (COL_CONF, 72), (COL_REVIEW, 54), (COL_OOD, 92),
                           (COL_FINAL, 104), (COL_OVERRIDDEN, 76)):
            t.setColumnWidth(col, width)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(self._update_shown)

        # Review (gui.results_review)
        self.build_review_box()

        # Sign-off
        self.sign_state_label = QLabel(self)
        self.sign_state_label.setWordWrap(True)
        self.sign_state_label.setTextFormat(Qt.TextFormat.PlainText)  # one line in one tone (theme.style)
        self.sign_state_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.sign_off_button = QPushButton("Sign off", self)
        self.sign_off_button.setToolTip("Record that you reviewed this sample (needs every flagged image reviewed)")
        self.sign_off_button.clicked.connect(self.sign_off_requested.emit)
        self.reopen_button = QPushButton("Reopen…", self)
        self.reopen_button.setToolTip("Undo the sign-off to change reviews (a reason is required)")
        self.reopen_button.clicked.connect(self.reopen_requested.emit)
        sign = QHBoxLayout()
        sign.addWidget(self.sign_state_label, 1)
        sign.addWidget(self.reopen_button)
        sign.addWidget(self.sign_off_button)

        self.summary_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.review_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.table.setMinimumHeight(120)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(5)
        layout.addLayout(header)
        layout.addWidget(self.summary_box)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.review_box)
        layout.addLayout(sign)
        self._signed_text = ""
        self.has_sample = False
        self._job_state: JobState | None = None  # the sample's batch job, while queued or running
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(SUMMARY_REFRESH_MS)
        self._summary_timer.timeout.connect(self.refresh_summary)
        self.update_review_box()
        self._update_sign_off()
        theme.follow(self, self.update_review_box)  # its rich text names the palette's colours

    # ------------------------------------------------------------------ content
    def _flag_filter_chosen(self) -> None:
        value = self.flag_combo.currentData()
        self.proxy.set_flag_filter(value)
        # Label next has its own order (engine.core.label_next); the others start in file order.
        self.table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
        self.proxy.invalidate()  # re-sorts even when the sort column did not change

    def label_next_shown(self) -> bool:
        """Whether the table shows Label next (reviews made there are marked so)."""
        return self.flag_combo.currentData() == "label_next"

    def set_sample(self, title: str, rows: list[ReviewedImage], n_images: int) -> None:
        """Show a sample's rows (replacing what was there)."""
        self.has_sample = True
        self.title_label.setText(title)
        self.title_label.setToolTip(title)
        self.n_images = n_images
        self.model.set_rows(rows)
        self.refresh_summary()
        self.update_review_box()

    def clear(self, message: str = "No sample selected") -> None:
        self.has_sample = False
        self.title_label.setText(message)
        self.n_images = 0
        self.model.set_rows([])
        self.set_sign_state(None, None)
        self.refresh_summary()

    def set_title(self, title: str) -> None:
        self.title_label.setText(title)

    def add_results(self, rows: list[ReviewedImage]) -> None:
        """New rows from a running batch. The summary follows at most every
        SUMMARY_REFRESH_MS (a batch delivers rows ten times a second)."""
        self.model.upsert(rows)
        self._update_shown()
        if not self._summary_timer.isActive():
            self._summary_timer.start()
        if self.current_result() is None:
            self.update_review_box()

    def set_review(self, path: str, final_class: str | None, reviewer: str | None, when: str | None = None) -> None:
        self.model.set_review(path, final_class, reviewer, when)
        self.refresh_summary()
        self.update_review_box()

    def flush(self) -> None:
        """Bring a pending summary refresh forward (before reading ``summary``)."""
        if self._summary_timer.isActive():
            self.refresh_summary()

    def refresh_summary(self) -> None:
        from engine.core.summary import summarize

        self._summary_timer.stop()
        rows = self.model.rows
        self.summary = summarize(rows, n_images=max(self.n_images, len(rows))) if rows else None
        self.summary_box.set_summary(self.summary, self.n_images, self.n_pending)
        self._update_shown()
        self._update_sign_off()

    @property
    def n_pending(self) -> int:
        return max(0, self.n_images - len(self.model.rows))

    def _update_shown(self, *_args) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        self.shown_label.setText(f"{shown} of {total} shown" if shown != total else f"{total} image(s)")

    # ------------------------------------------------------------------ sign-off
    def set_job_state(self, state: JobState | None) -> None:
        """The sample is queued or being classified (None: neither): reviews may go on, but no
        sign-off meanwhile."""
        self._job_state = state
        self.update_review_box()
        self._update_sign_off()

    def set_sign_state(self, signed_off_by: str | None, signed_off_at: str | None) -> None:
        self.locked = signed_off_at is not None
        self._signed_text = (f"✔ Signed off by {signed_off_by} at {format_time(signed_off_at)}. "
                             "Reopen to change reviews." if self.locked else "")
        self.update_review_box()
        self._update_sign_off()

    def sign_off_blockers(self) -> str:
        """Why the sample cannot be signed off now ("" when it can)."""
        if not self.has_sample:
            return "No sample selected."
        if self._job_state == JobState.RUNNING:
            return "Classification is running."
        if self._job_state == JobState.QUEUED:
            return "The sample is queued for classification."
        if self.n_images == 0:
            return "The sample has no images."
        blockers = sign_off_blockers(self.model.rows, self.n_images)  # the store's rule
        if blockers.n_pending:
            return f"{blockers.n_pending} image(s) not classified yet."
        if blockers.n_unreviewed:
            return f"{blockers.n_unreviewed} flagged image(s) left to review."
        return ""

    def refresh_permissions(self) -> None:
        """The person changed (signed in or out): what they may do with this sample."""
        self._update_sign_off()

    def _update_sign_off(self) -> None:
        self.reopen_button.setVisible(self.locked)
        self.sign_off_button.setVisible(not self.locked)
        refused = self.refusal("reopen")
        self.reopen_button.setEnabled(not refused)
        self.reopen_button.setToolTip(refused or "Undo the sign-off to change reviews (a reason is required)")
        self.export_button.setEnabled(self.has_sample and self.model.rowCount() > 0)
        if self.locked:
            self.show_sign_state(self._signed_text, Tone.OK)
            return
        blockers, refused = self.sign_off_blockers(), self.refusal("sign_off")
        self.sign_off_button.setEnabled(not blockers and not refused)
        self.sign_off_button.setToolTip(refused or blockers or "Record that you reviewed this sample")
        if not self.has_sample:
            self.show_sign_state("")
        elif blockers:
            self.show_sign_state(f"Not signed off: {blockers}", Tone.WARNING)
        else:
            self.show_sign_state("Ready to sign off.")

    def show_sign_state(self, text: str, tone: Tone | None = None) -> None:
        """The line beside Sign off (plain text) in ``tone`` (None: the palette's text colour)."""
        theme.style(self.sign_state_label, tone)
        self.sign_state_label.setText(text)
