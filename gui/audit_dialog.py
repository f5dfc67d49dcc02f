"""The audit view: every audit entry of the result database, filtered, checked and exportable.

At the top, the chain's state (:meth:`engine.store.results.ResultStore.verify_audit`: "Audit
trail intact: N entries" in green, or what is wrong in red); filters by sample, user, action and
date; the entries (local time, user, action, sample, image file, details in words) in a table
model; Export… writes the entries shown as CSV or JSON with the CLI's writer
(:func:`engine.reports.audit.write_audit`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QDate, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import AllSightError
from engine.reports.audit import action_label, describe_entry, local_time, write_audit
from engine.store.audit import AuditCheck
from engine.store.results import AuditEntry, ResultStore
from gui import theme
from gui.theme import Tone

ALL = "All"
COLUMNS = ("Time", "User", "Action", "Sample", "Image", "Details")


class AuditModel(QAbstractTableModel):
    """The entries shown (a list; :meth:`set_entries` replaces it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[AuditEntry] = []
        self._cells: list[tuple[str, ...]] = []

    def set_entries(self, entries: list[AuditEntry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self._cells = [(local_time(e), e.actor, action_label(e.action), e.sample_id or "", e.file_name,
                        describe_entry(e)) for e in entries]
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._cells)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            text = self._cells[index.row()][index.column()]
            if role == Qt.ItemDataRole.ToolTipRole and index.column() == 4:
                return self.entries[index.row()].path or ""
            return text
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Vertical and role == Qt.ItemDataRole.DisplayRole:
            return str(self.entries[section].pk)  # the entry number verify names
        return None


def choose_audit_file(parent: QWidget | None, start: str) -> str:
    """Where to write the export (.csv or .json); "" when cancelled."""
    dialog = QFileDialog(parent, "Export audit trail", start)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setNameFilters(["CSV (*.csv)", "JSON (*.json)"])
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    if not dialog.exec() or not dialog.selectedFiles():
        return ""
    path = Path(dialog.selectedFiles()[0])
    if path.suffix.lower() not in (".csv", ".json"):
        path = path.with_name(path.name + (".json" if "json" in dialog.selectedNameFilter().lower() else ".csv"))
    return str(path)


class AuditDialog(QDialog):
    """The audit trail of ``store`` (entries loaded when opened; :meth:`reload` reads them again)."""

    def __init__(self, store: ResultStore, parent: QWidget | None = None, *, actor: str = "") -> None:
        super().__init__(parent)
        self.store = store
        #: Who exports (the window's identity): the export itself is recorded in the audit trail.
        self.actor = actor
        self.setWindowTitle("Audit trail")
        self.resize(1000, 600)
        self.check: AuditCheck | None = None
        self._all: list[AuditEntry] = []

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.sample_box, self.user_box, self.action_box = QComboBox(), QComboBox(), QComboBox()
        for box in (self.sample_box, self.user_box, self.action_box):
            box.setMinimumContentsLength(10)
            box.currentIndexChanged.connect(self.apply_filters)
        self.from_check, self.to_check = QCheckBox("From"), QCheckBox("To")
        self.from_date, self.to_date = QDateEdit(), QDateEdit()
        for check, edit in ((self.from_check, self.from_date), (self.to_check, self.to_date)):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setDate(QDate.currentDate())
            edit.setEnabled(False)
            check.toggled.connect(edit.setEnabled)
            check.toggled.connect(self.apply_filters)
            edit.dateChanged.connect(self.apply_filters)

        filters = QHBoxLayout()
        for label, widget in (("Sample", self.sample_box), ("User", self.user_box), ("Action", self.action_box)):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        for check, edit in ((self.from_check, self.from_date), (self.to_check, self.to_date)):
            filters.addWidget(check)
            filters.addWidget(edit)
        filters.addStretch(1)

        self.model = AuditModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # wide enough for "2026-12-02 14:32 CET", a name, "Sample created" and a file name
        for column, width in enumerate((150, 120, 120, 110, 130)):
            self.table.setColumnWidth(column, width)

        self.count = QLabel()
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.count)
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)
        bottom.addWidget(buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        self.reload()

    # ------------------------------------------------------------------------------ loading
    def reload(self) -> None:
        """Check the chain and read every entry again."""
        self.check = self.store.verify_audit()
        if self.check.ok:
            self.status.setText(f"Audit trail intact: {self.check.n_entries} entries")
            theme.style(self.status, Tone.OK, "font-weight: bold;")
        else:
            self.status.setText(f"Audit trail damaged: {self.check.reason}")
            theme.style(self.status, Tone.ERROR, "font-weight: bold;")
        self._all = self.store.audit()
        for box, values in ((self.sample_box, {e.sample_id for e in self._all if e.sample_id}),
                            (self.user_box, {e.actor for e in self._all}),
                            (self.action_box, {e.action for e in self._all})):
            current = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem(ALL, None)
            for value in sorted(values):
                box.addItem(action_label(value) if box is self.action_box else value, value)
            box.setCurrentIndex(max(0, box.findData(current)) if current is not None else 0)
            box.blockSignals(False)
        self.apply_filters()

    def _since(self) -> datetime | None:
        if not self.from_check.isChecked():
            return None
        return datetime.combine(self.from_date.date().toPython(), time()).astimezone()  # type: ignore[arg-type]

    def _until(self) -> datetime | None:
        if not self.to_check.isChecked():
            return None
        day = self.to_date.date().toPython() + timedelta(days=1)  # type: ignore[operator]
        return datetime.combine(day, time()).astimezone()

    def filters(self) -> dict[str, Any]:
        """The filters chosen (``None``: any)."""
        return {"sample_id": self.sample_box.currentData(), "user": self.user_box.currentData(),
                "action": self.action_box.currentData(), "since": self._since(), "until": self._until()}

    def apply_filters(self, *_: object) -> None:
        f = self.filters()
        shown = [e for e in self._all
                 if (f["sample_id"] is None or e.sample_id == f["sample_id"])
                 and (f["user"] is None or e.actor == f["user"])
                 and (f["action"] is None or e.action == f["action"])
                 and (f["since"] is None or ((t := e.time) is not None and t >= f["since"]))
                 and (f["until"] is None or ((t := e.time) is not None and t < f["until"]))]
        self.model.set_entries(shown)
        self.count.setText(f"{len(shown)} of {len(self._all)} entries")

    # ------------------------------------------------------------------------------ export
    def export(self) -> Path | None:
        """Ask where, then write the entries shown. Returns the file, or None when cancelled."""
        start = str(Path.home() / "audit-trail.csv")
        target = choose_audit_file(self, start)
        if not target:
            return None
        filters = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.filters().items()}
        try:
            if Path(target).resolve() == self.store.path.resolve():
                raise AllSightError(f"{target} is the result database itself; choose another file")
            write_audit(self.model.entries, target, check=self.check, database=str(self.store.path),
                        filters=filters)
            try:  # an export the audit trail cannot record does not happen
                self.store.record_event("export", actor=self.actor, kind="audit",
                                        path=str(Path(target).absolute()), entries=len(self.model.entries))
            except AllSightError:
                Path(target).unlink(missing_ok=True)
                raise
        except AllSightError as exc:
            from gui.errors import show_exception

            show_exception(self, "The audit trail was not exported", exc)
            return None
        return Path(target)


__all__ = ["AuditDialog", "AuditModel", "choose_audit_file"]
