"""The review half of the Results tab: the current row, the review keys and what they do.

:class:`ReviewActions` is a mixin of :class:`gui.results.ResultsPanel`. It builds the review box (what
the model said about the current image, and its buttons), the review keys' actions (Enter confirms
the model's class, 1–4 pick Benign/Early/Pre/Pro, X excludes the image, Backspace withdraws the
review, N jumps to the next flagged image) and the table's context menu, and handles them. Like the
panel it never writes to the store: a decision becomes a ``review_requested`` or
``withdraw_requested`` signal of the panel, which the main window carries out.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
)

from engine.core.records import EXCLUDED_CLASS, ReviewedImage
from gui import theme
from gui.results_table import RowRole, class_name
from gui.theme import Tone

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QTableView

    from gui.results_table import ResultsFilter, ResultsModel

#: Review keys: (final class, label, shortcuts).
REVIEW_KEYS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Benign", "Benign", ("1",)),
    ("Early", "Early", ("2",)),
    ("Pre", "Pre", ("3",)),
    ("Pro", "Pro", ("4",)),
    (EXCLUDED_CLASS, "Exclude", ("X",)),
)


class ReviewActions:
    """Review box, review keys and their handlers, mixed into :class:`gui.results.ResultsPanel` (a
    widget: what this makes is the panel's, so the keys work wherever the focus is in the panel)."""

    # What the panel provides.
    model: ResultsModel
    proxy: ResultsFilter
    table: QTableView
    locked: bool
    has_sample: bool
    current_row_changed: SignalInstance
    review_requested: SignalInstance
    withdraw_requested: SignalInstance
    status_message: SignalInstance

    def build_review_box(self) -> QGroupBox:
        """The review box and the review keys' actions (on the panel, so the keys work anywhere in
        it); the table's context menu and current row are hooked to them."""
        t = self.table
        t.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        t.customContextMenuRequested.connect(self._context_menu)
        t.selectionModel().currentRowChanged.connect(self._on_current_changed)

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
        self.act_withdraw = self._action("Not reviewed", ("Backspace",),
                                         "Withdraw this image's review: it is not reviewed again (kept in the "
                                         "history and the audit log)", self.withdraw_current)
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
        return self.review_box

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
        menu.addAction(self.act_withdraw)
        menu.addSeparator()
        menu.addAction(self.act_next_flagged)
        menu.exec(self.table.viewport().mapToGlobal(pos))

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
        self.update_review_box()
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

    def withdraw_current(self) -> None:
        r = self.current_result()
        if r is None or not r.reviewed:
            return
        if self.locked:
            self.status_message.emit("This sample is signed off; reopen it to change reviews.")
            return
        self.withdraw_requested.emit(r.path)

    def after_review(self) -> None:
        """Called by the main window once a review is stored."""
        if self.auto_advance.isChecked():
            r = self.current_result()
            if r is not None and not r.to_review:
                self.next_flagged()

    def update_review_box(self) -> None:
        """The review actions' state and the model's output for the current row."""
        r = self.current_result()
        can_review = r is not None and not self.locked
        self.act_confirm.setEnabled(can_review and r.ok)
        for cls, act in self.actions_review.items():
            act.setEnabled(can_review and (r.ok or cls == EXCLUDED_CLASS))
        self.act_withdraw.setEnabled(can_review and r.reviewed)
        self.act_next_flagged.setEnabled(self.has_sample and self.model.rowCount() > 0)
        if r is None:
            self.model_output_label.setText(
                theme.span(Tone.MUTED, "Select an image (N: next flagged). Keys: Enter confirms the model's class, "
                           "1 Benign · 2 Early · 3 Pre · 4 Pro · X exclude · Backspace: not reviewed."))
            return
        parts = [f"<b>{html.escape(r.file_name)}</b>"]
        if r.ok:
            probs = ""
            if r.probabilities:
                top = sorted(r.probabilities.items(), key=lambda kv: -kv[1])  # all four: they add up to 100 %
                probs = " · ".join(f"{html.escape(class_name(c))} {100 * p:.0f} %" for c, p in top)
            parts.append(f"Model: <b>{html.escape(class_name(r.predicted_class))}</b> ({probs})")
            sentences = r.flag_sentences()
            if sentences:
                parts.append(theme.span(Tone.WARNING, "⚑ " + " ".join(html.escape(f"{s}.") for s in sentences)))
            if r.withheld:
                parts.append(theme.span(Tone.WARNING, "Not counted in the sample summary until you review it."))
        else:
            parts.append(theme.span(Tone.ERROR, f"Error: {html.escape(r.error or '')}"))
        if r.reviewed:
            who = html.escape(r.reviewed_by or "")
            verdict = "overrides the model" if r.overridden else "confirms the model"
            parts.append(f"Final: <b>{html.escape(class_name(r.final_class))}</b> by {who} ({verdict})")
        else:
            parts.append(theme.span(Tone.MUTED, "Not reviewed"))
        self.model_output_label.setText("<br>".join(parts))
