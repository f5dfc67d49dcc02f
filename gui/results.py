"""The Results tab: one row per classified image, the sample summary, review and sign-off.

* Each row is an :class:`~engine.core.records.ReviewedImage` (the store's record, or one made from
  a fresh classifier result): the flag, withheld and override rules are that record's.
* :class:`ResultsModel` / :class:`ResultsFilter` — the table and its class/flag filter + sorting.
* :class:`SummaryBox` — counts and fractions per class, the sample-level call and its rationale
  (:func:`engine.core.summary.summarize`), and how many images need a look.
* :class:`ResultsPanel` — all of the above plus the review controls (buttons, context menu and
  keys: Enter confirms the model's class, 1–4 pick Benign/Early/Pre/Pro, X excludes the image,
  N jumps to the next flagged image) and the Sign off / Reopen / Export buttons.

The panel never writes to the store itself: it emits requests that the main window carries out
(and then updates the rows), so every write goes through one place.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS
from engine.core.flags import labels
from engine.core.records import EXCLUDED_CLASS, ReviewedImage, sign_off_blockers

if TYPE_CHECKING:
    from engine.core.summary import SampleSummary

ERROR_KEY = "__error__"
#: While a batch streams rows in, the summary is recomputed at most this often.
SUMMARY_REFRESH_MS = 300

#: Review keys: (final class, label, shortcuts).
REVIEW_KEYS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Benign", "Benign", ("1",)),
    ("Early", "Early", ("2",)),
    ("Pre", "Pre", ("3",)),
    ("Pro", "Pro", ("4",)),
    (EXCLUDED_CLASS, "Exclude", ("X",)),
)


def class_name(class_id: str | None) -> str:
    if class_id is None:
        return ""
    if class_id == EXCLUDED_CLASS:
        return "Excluded"
    return CLASS_DISPLAY_NAMES.get(class_id, class_id)


def short_class_name(class_id: str | None) -> str:
    """The display name without its parenthesis ("Benign (hematogones)" -> "Benign"), for the
    table's narrow columns (the tooltip has the full name)."""
    return class_name(class_id).split(" (")[0]


def class_key(r: ReviewedImage) -> str:
    """What a row counts as in the class filter: its effective class, or ERROR_KEY for an error
    no one has reviewed."""
    return r.effective_class if r.effective_class is not None else ERROR_KEY


COLUMNS = ("File", "Model class", "Confidence", "Review", "Flags", "Final class", "Reviewed by", "Overridden")
COL_FILE, COL_CLASS, COL_CONF, COL_REVIEW, COL_OOD, COL_FINAL, COL_BY, COL_OVERRIDDEN = range(len(COLUMNS))

SortRole = int(Qt.ItemDataRole.UserRole) + 1
RowRole = int(Qt.ItemDataRole.UserRole) + 2
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_NO_PARENT = QModelIndex()

_BG_TO_REVIEW = QColor("#fff3e0")
_BG_ERROR = QColor("#fdecea")
_FG_ERROR = QColor("#b71c1c")
_FG_MUTED = QColor("#78909c")


class ResultsModel(QAbstractTableModel):
    """The rows of one sample, in image order."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[ReviewedImage] = []
        #: The table's display strings per row (made on first paint; reset when the row changes).
        self._display_cache: list[tuple[str, ...] | None] = []
        self._by_path: dict[str, int] = {}
        self._bold = QFont()
        self._bold.setBold(True)

    # -------------------------------------------------------------- Qt model
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _NO_PARENT) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _NO_PARENT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {
                COL_CLASS: "The model's class (never changed by a review)",
                COL_CONF: "The model's calibrated probability of its class",
                COL_REVIEW: "Needs review: low confidence or out of distribution, a person must look at it",
                COL_OOD: "Why the image is flagged (hover for the full sentence); the model cannot judge an "
                         "image flagged other than low confidence, and it is not counted until reviewed",
                COL_FINAL: "The reviewer's class (what counts in the summary)",
            }.get(section)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        # Called for every visible cell and role on each repaint: kept cheap (int roles, cached
        # display strings, a dispatch on the few roles the table uses).
        row = index.row()
        rows = self.rows
        if not 0 <= row < len(rows):
            return None
        role = int(role)
        r = rows[row]
        col = index.column()
        if role == _DISPLAY:
            cached = self._display_cache[row]
            if cached is None:
                cached = self._display_cache[row] = tuple(self._display(r, c) for c in range(len(COLUMNS)))
            return cached[col]
        if role == _BACKGROUND:
            if not r.ok and not r.reviewed:
                return _BG_ERROR
            return _BG_TO_REVIEW if r.to_review else None
        if role == _FOREGROUND:
            if col == COL_CLASS and not r.ok:
                return _FG_ERROR
            if col == COL_FINAL and not r.reviewed:
                return _FG_MUTED
            return None
        if role == _FONT:
            return self._bold if col == COL_FINAL and r.reviewed else None
        if role == _ALIGN:
            return _RIGHT if col == COL_CONF else None
        if role == RowRole:
            return r
        if role == SortRole:
            return self._sort_key(r, col)
        if role == _TOOLTIP:
            return self._tooltip(r, col)
        return None

    @staticmethod
    def _tooltip(r: ReviewedImage, col: int) -> str | None:
        if not r.ok:
            return f"{r.path}\nError: {r.error}"
        if col == COL_OOD and (r.flags or r.out_of_distribution or r.needs_review):
            text = "\n".join(f"{s}." for s in r.flag_sentences())
            return text + ("\nNot counted in the sample summary until reviewed." if r.withheld else "")
        if col == COL_FINAL and r.reviewed:
            when = f" at {format_time(r.reviewed_at)}" if r.reviewed_at else ""
            return f"{class_name(r.final_class)} — reviewed by {r.reviewed_by}{when}"
        if col in (COL_CLASS, COL_CONF) and r.probabilities:
            return "\n".join(f"{class_name(c)}: {100 * p:.1f} %" for c, p in
                             sorted(r.probabilities.items(), key=lambda kv: -kv[1]))
        if col == COL_FILE:
            return r.path
        return None

    @staticmethod
    def _display(r: ReviewedImage, col: int) -> str:
        if col == COL_FILE:
            return r.file_name
        if col == COL_CLASS:
            return short_class_name(r.predicted_class) if r.ok else "Error"
        if col == COL_CONF:
            return "" if r.confidence is None else f"{100 * r.confidence:.1f} %"
        if col == COL_REVIEW:
            if not r.ok:
                return "⚑ error"
            return "⚑ yes" if r.needs_review else ""
        if col == COL_OOD:
            if r.flags:
                return labels(r.flags)
            return "OOD" if r.out_of_distribution else ""
        if col == COL_FINAL:
            return short_class_name(r.final_class) if r.reviewed else "—"
        if col == COL_BY:
            return r.reviewed_by or ""
        if col == COL_OVERRIDDEN:
            return "overridden" if r.overridden else ""
        return ""

    @staticmethod
    def _sort_key(r: ReviewedImage, col: int) -> Any:
        if col == COL_FILE:
            return r.position
        if col == COL_CLASS:
            return CLASS_IDS.index(r.predicted_class) if r.ok and r.predicted_class in CLASS_IDS else 99
        if col == COL_CONF:
            return -1.0 if r.confidence is None else r.confidence
        if col == COL_REVIEW:
            return int(r.needs_review) + 2 * int(not r.ok)
        if col == COL_OOD:
            return r.ood_score if r.out_of_distribution and r.ood_score is not None else (
                1e18 if r.out_of_distribution else -1.0)
        if col == COL_FINAL:
            return class_name(r.final_class) if r.reviewed else ""
        if col == COL_BY:
            return r.reviewed_by or ""
        if col == COL_OVERRIDDEN:
            return int(r.overridden)
        return 0

    # -------------------------------------------------------------- content
    def set_rows(self, rows: list[ReviewedImage]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self._display_cache = [None] * len(self.rows)
        self._by_path = {r.path: i for i, r in enumerate(self.rows)}
        self.endResetModel()

    def upsert(self, rows: list[ReviewedImage]) -> None:
        """Add new rows at the end (one insert for all of them) and replace known ones."""
        new = []
        for r in rows:
            i = self._by_path.get(r.path)
            if i is None:
                new.append(r)
            else:
                old = self.rows[i]
                if old.reviewed and not r.reviewed:  # a fresh model result keeps the review
                    r = r.with_review(old.final_class, old.reviewed_by, old.reviewed_at, old.review_note)
                self.rows[i], self._display_cache[i] = r, None
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
        if new:
            first = len(self.rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for k, r in enumerate(new):
                self._by_path[r.path] = first + k
                self.rows.append(r)
                self._display_cache.append(None)
            self.endInsertRows()

    def row_of(self, path: str) -> int:
        return self._by_path.get(path, -1)

    def row_data(self, row: int) -> ReviewedImage | None:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def set_review(self, path: str, final_class: str, reviewer: str, when: str | None = None) -> bool:
        i = self._by_path.get(path)
        if i is None:
            return False
        self.rows[i] = self.rows[i].with_review(final_class, reviewer, when)
        self._display_cache[i] = None
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
        return True


CLASS_FILTERS: tuple[tuple[str, str | None], ...] = (
    ("All classes", None),
    *((class_name(c), c) for c in CLASS_IDS),
    ("Excluded", EXCLUDED_CLASS),
    ("Errors", ERROR_KEY),
)
FLAG_FILTERS: tuple[tuple[str, str], ...] = (
    ("All images", "all"),
    ("Flagged, not reviewed", "to_review"),
    ("Flagged", "flagged"),
    ("Needs review", "needs_review"),
    ("Out of distribution", "ood"),
    ("Errors", "errors"),
    ("Reviewed", "reviewed"),
    ("Overridden", "overridden"),
)


class ResultsFilter(QSortFilterProxyModel):
    """Filter rows by class (the final class: the reviewer's where reviewed) and by flag."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.class_filter: str | None = None
        self.flag_filter = "all"
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)

    def set_class_filter(self, value: str | None) -> None:
        self.beginFilterChange()
        self.class_filter = value
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_flag_filter(self, value: str) -> None:
        self.beginFilterChange()
        self.flag_filter = value
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    @staticmethod
    def matches(r: ReviewedImage, class_filter: str | None, flag_filter: str) -> bool:
        if class_filter is not None and class_key(r) != class_filter:
            return False
        return {
            "all": True,
            "to_review": r.to_review,
            "flagged": r.flagged,
            "needs_review": r.needs_review,
            "ood": r.out_of_distribution,
            "errors": not r.ok,
            "reviewed": r.reviewed,
            "overridden": r.overridden,
        }.get(flag_filter, True)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        r = model.row_data(source_row) if isinstance(model, ResultsModel) else None
        return r is None or self.matches(r, self.class_filter, self.flag_filter)


def _call_colour(code: str) -> str:
    if code.startswith("ALL_"):
        return "#b71c1c"
    if code == "BENIGN":
        return "#2e7d32"
    return "#e65100"


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
        self.warning_label.setStyleSheet("color: #b71c1c; background: #fdecea; border: 1px solid #b71c1c; "
                                         "padding: 3px; font-weight: bold;")
        self.warning_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.warning_label.hide()
        self.rationale_label = QLabel(self)
        self.rationale_label.setWordWrap(True)
        self.rationale_label.setStyleSheet("color: #455a64;")
        self.rationale_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note_label = QLabel("Research use only — not a diagnosis. A qualified person must review the images.",
                                 self)
        self.note_label.setStyleSheet("color: #8d6e63; font-size: 11px;")
        self.note_label.setWordWrap(True)

        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(3)
        for col, text in enumerate(("Class", "Images", "Fraction", "Model said")):
            head = QLabel(f"<b>{text}</b>", self)
            head.setStyleSheet("color: #546e7a;")
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
        self.set_summary(None)

    def set_summary(self, summary: SampleSummary | None, n_images: int = 0, n_pending: int = 0) -> None:
        """Show ``engine.core.summary.SampleSummary`` (None: nothing classified yet)."""
        self.summary = summary
        if summary is None:
            self.call_label.setText("Not classified yet")
            self.call_label.setStyleSheet("color: #607d8b;")
            self.rationale_label.setText(
                f"{n_images} image(s). Press Classify to classify them." if n_images else "No sample selected.")
            for row_labels in self.count_labels.values():
                for label in row_labels:
                    label.setText("")
            self.flags_label.setText("")
            self.warning_label.setText("")
            self.warning_label.hide()
            return
        warning = getattr(summary, "acquisition_warning", None)
        # Only what changed is set: each setText/setStyleSheet on a word-wrapped label relayouts
        # the panel, and this runs for every batch of results (measured: 57-172 ms stalls).
        _set_text(self.warning_label, f"⚠ {html.escape(warning)}." if warning else "")
        if self.warning_label.isVisibleTo(self) != bool(warning):
            self.warning_label.setVisible(bool(warning))
        _set_text(self.call_label, html.escape(summary.call))
        _set_style(self.call_label, f"color: {_call_colour(summary.call_code)};")
        _set_text(self.rationale_label, summary.rationale)
        for cls, (count, frac, model) in self.count_labels.items():
            if cls == EXCLUDED_CLASS:
                _set_text(count, str(summary.n_excluded))
                _set_text(frac, "")
                _set_text(model, "")
            else:
                _set_text(count, str(summary.counts.get(cls, 0)))
                _set_text(frac, f"{100 * summary.fractions.get(cls, 0.0):.0f} %" if summary.n_classified else "—")
                _set_text(model, str(summary.model_counts.get(cls, 0)))
        parts = [f"{n_images or summary.n_images} images", f"{summary.n_classified} classified"]
        if n_pending:
            parts.append(f"<b>{n_pending} not classified yet</b>")
        if summary.n_error:
            parts.append(f"<span style='color:#b71c1c'>{summary.n_error} error(s)</span>")
        parts.append(f"{summary.n_needs_review} need review")
        parts.append(f"{summary.n_ood} OOD")
        if summary.n_withheld:
            parts.append(f"<b style='color:#e65100'>{summary.n_withheld} not counted (cannot be judged, "
                         "not reviewed)</b>")
        parts.append(f"{summary.n_reviewed} reviewed ({summary.n_overridden} overridden)")
        left = summary.n_flagged_unreviewed
        parts.append(f"<b style='color:#e65100'>{left} flagged left to review</b>" if left
                     else "<span style='color:#2e7d32'>all flagged images reviewed</span>")
        _set_text(self.flags_label, " · ".join(parts))


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


def _set_style(widget: QWidget, sheet: str) -> None:
    if widget.styleSheet() != sheet:
        widget.setStyleSheet(sheet)


class ResultsPanel(QWidget):
    """Table + filters + summary + review controls + sign-off, for the selected sample."""

    #: The selected row changed (ReviewedImage or None).
    current_row_changed = Signal(object)
    #: (path, final class): the reviewer decided.
    review_requested = Signal(str, str)
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
        self.flag_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_flag_filter(self.flag_combo.currentData()))
        self.shown_label = QLabel(self)
        self.shown_label.setStyleSheet("color: #546e7a;")
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Show", self))
        filters.addWidget(self.class_combo)
        filters.addWidget(self.flag_combo)
        filters.addStretch(1)
        filters.addWidget(self.shown_label)

        # Table
        self.table = QTableView(self)
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
        t.horizontalHeader().setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_CLASS, 104), (COL_CONF, 80), (COL_REVIEW, 58), (COL_OOD, 96), (COL_FINAL, 112),
                           (COL_BY, 88), (COL_OVERRIDDEN, 82)):
            t.setColumnWidth(col, width)
        t.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        t.customContextMenuRequested.connect(self._context_menu)
        t.selectionModel().currentRowChanged.connect(self._on_current_changed)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(self._update_shown)

        # Review
        self.model_output_label = QLabel(self)
        self.model_output_label.setWordWrap(True)
        self.model_output_label.setTextFormat(Qt.TextFormat.RichText)
        self.model_output_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.actions_review: dict[str, QAction] = {}
        self.act_confirm = self._action("Confirm", ("Return", "Enter"),
                                        "Confirm the model's class for this image", self.confirm_current)
        review_buttons = QHBoxLayout()
        review_buttons.setSpacing(4)
        review_buttons.addWidget(self._tool_button(self.act_confirm))
        for cls, text, keys in REVIEW_KEYS:
            act = self._action(text, keys, f"Set the final class to {class_name(cls)}",
                               lambda _checked=False, c=cls: self.review_current(c))
            self.actions_review[cls] = act
            review_buttons.addWidget(self._tool_button(act))
        self.act_next_flagged = self._action("Next flagged", ("N",), "Go to the next flagged image not reviewed yet",
                                             self.next_flagged)
        review_buttons.addSpacing(8)
        review_buttons.addWidget(self._tool_button(self.act_next_flagged))
        review_buttons.addStretch(1)
        self.auto_advance = QCheckBox("Then go to the next flagged image", self)
        self.auto_advance.setChecked(True)
        self.review_box = QGroupBox("Review", self)
        rl = QVBoxLayout(self.review_box)
        rl.setContentsMargins(8, 6, 8, 6)
        rl.setSpacing(4)
        rl.addWidget(self.model_output_label)
        rl.addLayout(review_buttons)
        rl.addWidget(self.auto_advance)

        # Sign-off
        self.sign_state_label = QLabel(self)
        self.sign_state_label.setWordWrap(True)
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
        self._has_sample = False
        self._busy = False
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(SUMMARY_REFRESH_MS)
        self._summary_timer.timeout.connect(self.refresh_summary)
        self._update_review_box()
        self._update_sign_off()

    # ------------------------------------------------------------------ construction helpers
    def _action(self, text: str, keys: tuple[str, ...], tip: str, slot) -> QAction:
        act = QAction(text, self)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        hint = "/".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in keys)
        act.setToolTip(f"{tip} ({hint})")
        act.setIconText(f"{text} [{hint}]")
        act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _tool_button(self, act: QAction) -> QToolButton:
        b = QToolButton(self)
        b.setDefaultAction(act)
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        return b

    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.setCurrentIndex(index)
        menu = QMenu(self)
        menu.addAction(self.act_confirm)
        for act in self.actions_review.values():
            menu.addAction(act)
        menu.addSeparator()
        menu.addAction(self.act_next_flagged)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ content
    def set_sample(self, title: str, rows: list[ReviewedImage], n_images: int) -> None:
        """Show a sample's rows (replacing what was there)."""
        self._has_sample = True
        self.title_label.setText(title)
        self.title_label.setToolTip(title)
        self.n_images = n_images
        self.model.set_rows(rows)
        self.refresh_summary()
        self._update_review_box()

    def clear(self, message: str = "No sample selected") -> None:
        self._has_sample = False
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
            self._update_review_box()

    def set_review(self, path: str, final_class: str, reviewer: str, when: str | None = None) -> None:
        self.model.set_review(path, final_class, reviewer, when)
        self.refresh_summary()
        self._update_review_box()

    def flush(self) -> None:
        """Bring a pending summary refresh forward (before reading ``summary``)."""
        if self._summary_timer.isActive():
            self.refresh_summary()

    def refresh_summary(self) -> None:
        from engine.core.summary import summarize

        self._summary_timer.stop()
        rows = self.model.rows
        self.summary = summarize(rows) if rows else None
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

    # ------------------------------------------------------------------ selection
    def current_result(self) -> ReviewedImage | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.proxy.data(index, RowRole)

    def select_path(self, path: str) -> bool:
        """Make the row of ``path`` current (when shown by the filter)."""
        row = self.model.row_of(path)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        current = self.table.currentIndex()
        if current.isValid() and current.row() == index.row():
            return True
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)
        return True

    def select_proxy_row(self, row: int) -> None:
        index = self.proxy.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_review_box()
        self.current_row_changed.emit(self.proxy.data(current, RowRole) if current.isValid() else None)

    def next_flagged(self) -> bool:
        """Go to the next flagged image not reviewed yet (after the current row, wrapping)."""
        n = self.proxy.rowCount()
        if n == 0:
            return False
        current = self.table.currentIndex()
        start = current.row() if current.isValid() else -1
        for k in range(1, n + 1):
            row = (start + k) % n
            r = self.proxy.data(self.proxy.index(row, 0), RowRole)
            if r is not None and r.to_review:
                self.select_proxy_row(row)
                self.table.setFocus()
                return True
        self.status_message.emit("No flagged image left to review" + (
            " in this view." if self.proxy.rowCount() != self.model.rowCount() else "."))
        return False

    # ------------------------------------------------------------------ review
    def confirm_current(self) -> None:
        r = self.current_result()
        if r is None:
            return
        if not r.ok:
            self.status_message.emit(f"{r.file_name} could not be classified: exclude it (X) instead.")
            return
        self.review_current(r.predicted_class)

    def review_current(self, final_class: str) -> None:
        r = self.current_result()
        if r is None or self.locked:
            if self.locked:
                self.status_message.emit("This sample is signed off; reopen it to change reviews.")
            return
        if not r.ok and final_class != EXCLUDED_CLASS:
            self.status_message.emit(f"{r.file_name} could not be classified: it can only be excluded (X).")
            return
        self.review_requested.emit(r.path, final_class)

    def after_review(self) -> None:
        """Called by the main window once a review is stored."""
        if self.auto_advance.isChecked():
            r = self.current_result()
            if r is not None and not r.to_review:
                self.next_flagged()

    def _update_review_box(self) -> None:
        r = self.current_result()
        can_review = r is not None and not self.locked
        self.act_confirm.setEnabled(can_review and r.ok)
        for cls, act in self.actions_review.items():
            act.setEnabled(can_review and (r.ok or cls == EXCLUDED_CLASS))
        self.act_next_flagged.setEnabled(self._has_sample and self.model.rowCount() > 0)
        if r is None:
            self.model_output_label.setText(
                "<span style='color:#607d8b'>Select an image (N: next flagged). Keys: Enter confirms the "
                "model's class, 1 Benign · 2 Early · 3 Pre · 4 Pro · X exclude.</span>")
            return
        parts = [f"<b>{html.escape(r.file_name)}</b>"]
        if r.ok:
            probs = ""
            if r.probabilities:
                top = sorted(r.probabilities.items(), key=lambda kv: -kv[1])[:3]
                probs = " · ".join(f"{html.escape(class_name(c))} {100 * p:.0f} %" for c, p in top)
            parts.append(f"Model: <b>{html.escape(class_name(r.predicted_class))}</b> ({probs})")
            sentences = r.flag_sentences()
            if sentences:
                parts.append("<span style='color:#e65100'>⚑ " + " ".join(html.escape(f"{s}.") for s in sentences)
                             + "</span>")
            if r.withheld:
                parts.append("<span style='color:#e65100'>Not counted in the sample summary until you review "
                             "it.</span>")
        else:
            parts.append(f"<span style='color:#b71c1c'>Error: {html.escape(r.error or '')}</span>")
        if r.reviewed:
            who = html.escape(r.reviewed_by or "")
            verdict = "overrides the model" if r.overridden else "confirms the model"
            parts.append(f"Final: <b>{html.escape(class_name(r.final_class))}</b> by {who} ({verdict})")
        else:
            parts.append("<span style='color:#607d8b'>Not reviewed</span>")
        self.model_output_label.setText("<br>".join(parts))

    # ------------------------------------------------------------------ sign-off
    def set_busy(self, busy: bool) -> None:
        """The sample is being classified: reviews may go on, but no sign-off meanwhile."""
        self._busy = busy
        self._update_review_box()
        self._update_sign_off()

    def set_sign_state(self, signed_off_by: str | None, signed_off_at: str | None) -> None:
        self.locked = signed_off_at is not None
        self._signed_text = (f"✔ Signed off by {signed_off_by} at {format_time(signed_off_at)}. "
                             "Reopen to change reviews." if self.locked else "")
        self._update_review_box()
        self._update_sign_off()

    def sign_off_blockers(self) -> str:
        """Why the sample cannot be signed off now ("" when it can)."""
        if not self._has_sample:
            return "No sample selected."
        if self._busy:
            return "Classification is running."
        if self.n_images == 0:
            return "The sample has no images."
        blockers = sign_off_blockers(self.model.rows, self.n_images)  # the store's rule
        if blockers.n_pending:
            return f"{blockers.n_pending} image(s) not classified yet."
        if blockers.n_unreviewed:
            return f"{blockers.n_unreviewed} flagged image(s) left to review."
        return ""

    def _update_sign_off(self) -> None:
        self.reopen_button.setVisible(self.locked)
        self.sign_off_button.setVisible(not self.locked)
        self.export_button.setEnabled(self._has_sample and self.model.rowCount() > 0)
        if self.locked:
            self.sign_state_label.setText(f"<span style='color:#2e7d32'>{html.escape(self._signed_text)}</span>")
            return
        blockers = self.sign_off_blockers()
        self.sign_off_button.setEnabled(not blockers)
        self.sign_off_button.setToolTip(blockers or "Record that you reviewed this sample")
        if not self._has_sample:
            self.sign_state_label.setText("")
        elif blockers:
            self.sign_state_label.setText(f"<span style='color:#e65100'>Not signed off: {html.escape(blockers)}</span>")
        else:
            self.sign_state_label.setText("Ready to sign off.")


def format_time(iso: str | None) -> str:
    """An ISO 8601 UTC timestamp shown in local time, to the minute."""
    if not iso:
        return ""
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso
