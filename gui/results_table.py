"""The Results tab's table: one row per classified image (a
:class:`~engine.core.records.ReviewedImage`: the flag, withheld and override rules are that
record's), and the class/flag filter with sorting. Class names as people read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS
from engine.core.flags import labels
from engine.core.label_next import teaching_key, wants_label
from engine.core.records import EXCLUDED_CLASS, ReviewedImage
from gui import theme
from gui.theme import Tone

if TYPE_CHECKING:
    pass

ERROR_KEY = "__error__"

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
        #: The row tints and text tones for the palette (data() runs per cell and paint: kept here,
        #: reset on a palette change).
        self._colors: dict[Tone, QColor] = {}
        theme.follow(self, self._palette_changed, now=True)

    def _palette_changed(self) -> None:
        self._colors = {tone: theme.qcolor(tone) for tone in (Tone.ROW_TO_REVIEW, Tone.ROW_ERROR, Tone.ERROR,
                                                               Tone.MUTED)}
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(COLUMNS) - 1),
                                  [_BACKGROUND, _FOREGROUND])

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
                return self._colors[Tone.ROW_ERROR]
            return self._colors[Tone.ROW_TO_REVIEW] if r.to_review else None
        if role == _FOREGROUND:
            if col == COL_CLASS and not r.ok:
                return self._colors[Tone.ERROR]
            if col == COL_FINAL and not r.reviewed:
                return self._colors[Tone.MUTED]
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

    def set_review(self, path: str, final_class: str | None, reviewer: str | None, when: str | None = None) -> bool:
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
    ("Label next: least sure first", "label_next"),
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
            "label_next": wants_label(r),
            "flagged": r.flagged,
            "needs_review": r.needs_review,
            "ood": r.out_of_distribution,
            "errors": not r.ok,
            "reviewed": r.reviewed,
            "overridden": r.overridden,
        }.get(flag_filter, True)

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,  # noqa: N802 (Qt's name)
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        """Label next sorts by what a review teaches most, whatever the sort column."""
        model = self.sourceModel()
        if self.flag_filter == "label_next" and isinstance(model, ResultsModel):
            a, b = model.row_data(left.row()), model.row_data(right.row())
            if a is not None and b is not None:
                return teaching_key(a) < teaching_key(b)
        return super().lessThan(left, right)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        r = model.row_data(source_row) if isinstance(model, ResultsModel) else None
        return r is None or self.matches(r, self.class_filter, self.flag_filter)


def format_time(iso: str | None) -> str:
    """An ISO 8601 UTC timestamp shown in local time, to the minute."""
    if not iso:
        return ""
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso
