"""The retraining wizard's last two steps: *Compare* — the candidate against the current model
on the lab's held-out images and on the reference set (accuracy, per-class recall, calibration,
flagged share, confusion matrices side by side; the candidate's regressions in red) — and
*Promote* — the candidate becomes the active model only by this explicit act, with a reason
(typed, when it is worse on the reference set), recorded in the audit trail with both models'
sha256 and the figures shown; or Discard, which deletes the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from engine import CLASS_IDS
from engine.training import job
from engine.training.compare import REGRESSION_TOLERANCE_PTS
from gui import theme
from gui.theme import Tone

PARTS = (("lab_validation", "the lab's held-out images"), ("reference", "the reference set (development test split)"))


def read_compare(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / job.COMPARE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


#: Points by which a candidate may trail before a figure is shown in red (the engine's rule).
TOLERANCE = REGRESSION_TOLERANCE_PTS / 100


def _rows(figures: dict[str, Any]) -> list[tuple[str, str, float | None, bool]]:
    """(figure, text, value, higher is better) rows of one model on one set of images."""
    rows: list[tuple[str, str, float | None, bool]] = [
        ("Accuracy", f"{figures['accuracy'] * 100:.1f} %", figures["accuracy"], True)]
    rows += [(f"{c} recall", f"{figures['recall'][c] * 100:.1f} %", figures["recall"][c], True) for c in CLASS_IDS]
    rows += [("Calibration error (ECE)", f"{figures['ece']:.3f}", figures["ece"], False),
             ("Flagged for review", f"{figures['flagged_fraction'] * 100:.0f} %", None, False)]
    swap = figures.get("background_swap")
    rows += [("Follows the cell (background swaps)", f"{swap['follows_cells'] * 100:.0f} %" if swap else "—",
              swap["follows_cells"] if swap else None, True)]
    return rows


def confusion_table(matrix: list[list[int]], title: str, parent: QWidget | None = None) -> QWidget:
    """A confusion matrix as a grid: rows the true class, columns the model's call."""
    box = QWidget(parent)
    table = QTableWidget(len(CLASS_IDS), len(CLASS_IDS), box)
    table.setHorizontalHeaderLabels(list(CLASS_IDS))
    table.setVerticalHeaderLabels(list(CLASS_IDS))
    for r, row in enumerate(matrix):
        for c, value in enumerate(row):
            item = QTableWidgetItem(str(value))
            if r == c:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    table.setMaximumHeight(table.verticalHeader().length() + table.horizontalHeader().height() + 6)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(QLabel(title, box))
    layout.addWidget(table)
    return box


def worse(current: float | None, candidate: float | None, higher_is_better: bool) -> bool:
    if current is None or candidate is None:
        return False
    return candidate < current - TOLERANCE if higher_is_better else candidate > current + TOLERANCE


class ComparePage(QWizardPage):
    def __init__(self):
        super().__init__()
        self.setTitle("Compare: the new model against the current one")
        self.run_dir: Path | None = None
        self.report: dict[str, Any] = {}
        self.red_cells: list[tuple[int, int]] = []
        self.table = QTableWidget(0, 1, self)
        self.table.verticalHeader().hide()
        self.regressions_label = QLabel(self)
        self.regressions_label.setWordWrap(True)
        self.confusion_row = QHBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(self.confusion_row)
        layout.addWidget(self.regressions_label)

    def initializePage(self) -> None:  # noqa: N802 (Qt's name)
        assert self.run_dir is not None
        self.report = read_compare(self.run_dir)
        parts = [(key, title) for key, title in PARTS if key in self.report]
        headers = ["Figure"] + [f"{who} — {title}" for _, title in parts for who in ("current", "new")]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        names = [row[0] for row in _rows(self.report[parts[0][0]]["current"])] if parts else []
        self.table.setRowCount(len(names))
        for r, name in enumerate(names):
            self.table.setItem(r, 0, QTableWidgetItem(name))
        self.red_cells: list[tuple[int, int]] = []
        col = 1
        for key, _ in parts:
            cur, cand = _rows(self.report[key]["current"]), _rows(self.report[key]["candidate"])
            for r, (a, b) in enumerate(zip(cur, cand, strict=True)):
                self.table.setItem(r, col, QTableWidgetItem(a[1]))
                item = QTableWidgetItem(b[1])
                if worse(a[2], b[2], a[3]):
                    item.setForeground(theme.qcolor(Tone.ERROR))
                    self.red_cells.append((r, col + 1))
                self.table.setItem(r, col + 1, item)
            col += 2
        self.table.resizeColumnsToContents()
        while self.confusion_row.count():  # a second visit rebuilds them
            widget = self.confusion_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for key, title in parts:
            for who, label in (("current", "current"), ("candidate", "new")):
                self.confusion_row.addWidget(confusion_table(self.report[key][who]["confusion_matrix"],
                                                             f"{label} — {title.split(' (')[0]} (rows: true class)", self))
        lines = [f"Worse on {title}: " + "; ".join(self.report[key]["regressions"])
                 for key, title in parts if self.report[key]["regressions"]]
        self.regressions_label.setText("\n".join(lines) or "No regressions: the new model is at least as good on "
                                                           "every figure shown.")
        theme.style(self.regressions_label, Tone.ERROR if lines else Tone.OK)

    def worse_on_reference(self) -> bool:
        return bool(self.report.get("reference", {}).get("regressions"))


class PromotePage(QWizardPage):
    def __init__(self, compare_page: ComparePage, refusal: str = ""):
        super().__init__()
        self.setTitle("Promote")
        self.compare_page = compare_page
        self.refusal = refusal
        self.info_label = QLabel(self)
        self.info_label.setWordWrap(True)
        self.reason_edit = QLineEdit(self)
        self.reason_edit.setPlaceholderText("why this model should classify from now on (kept in the audit trail)")
        self.reason_edit.textChanged.connect(self.completeChanged)
        layout = QVBoxLayout(self)
        layout.addWidget(self.info_label)
        layout.addWidget(self.reason_edit)
        self.setFinalPage(True)

    def initializePage(self) -> None:  # noqa: N802 (Qt's name)
        worse = self.compare_page.worse_on_reference()
        text = ("Finish makes the new model the active model, recorded in the audit trail with both models' "
                "sha256 and the figures of the Compare step. Cancel keeps the current model (Discard deletes the "
                "new one).")
        if worse:
            text += "\n\nThe new model is worse than the current one on the reference set: type why it should "\
                    "be promoted anyway."
        if self.refusal:
            text = f"You cannot promote models: {self.refusal}. Ask a reviewer or administrator."
        self.info_label.setText(text)
        theme.style(self.info_label, Tone.ERROR if worse or self.refusal else None)
        if not worse and not self.reason_edit.text():
            self.reason_edit.setText("retrained on the lab's labelled images; compared on held-out lab images "
                                     "and the reference set")
        self.reason_edit.setEnabled(not self.refusal)

    def isComplete(self) -> bool:  # noqa: N802 (Qt's name)
        return not self.refusal and len(self.reason_edit.text().strip()) >= 3


__all__ = ["ComparePage", "PromotePage", "read_compare"]
