"""The batch-queue panel (a dock): the queued samples with their progress, and the controls.

It only displays :class:`gui.batch.BatchQueue` and calls its methods; adding a sample goes
through the main window (``add_requested``), which knows the store and the current sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.core.jobs import RESTARTABLE
from gui import theme
from gui.batch import BatchQueue
from gui.batch_job import DONE, FAILED, QUEUED, RUNNING, BatchJob, format_eta
from gui.theme import Tone

COLUMNS = ("Sample", "Status", "Progress", "Images/s", "ETA")


#: The overall bar is redrawn at most this often (QProgressBar repaints synchronously).
OVERALL_REFRESH_S = 0.3
ProgressRole = Qt.ItemDataRole.UserRole + 1


class JobTable(QTableWidget):
    """The jobs table; rows can be dragged to a new place in the queue.

    Qt's own internal move would shuffle the table's items behind the queue's back, so the drop
    is turned into a ``row_dropped(from_row, to_row)`` request and the table is rebuilt from
    the queue."""

    row_dropped = Signal(int, int)

    def __init__(self, rows: int, columns: int, parent: QWidget | None = None):
        super().__init__(rows, columns, parent)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)
        self.setDragDropOverwriteMode(False)

    def drop_target_row(self, pos: QPoint) -> int:
        """The row a drop at ``pos`` (viewport coordinates) puts the dragged row at."""
        index = self.indexAt(pos)
        if not index.isValid():
            return self.rowCount() - 1  # below the last row: to the end
        rect = self.visualRect(index)
        return index.row() + (1 if pos.y() > rect.center().y() else 0)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        rows = self.selectionModel().selectedRows()
        if event.source() not in (self, None) or not rows:
            event.ignore()
            return
        source = rows[0].row()
        target = self.drop_target_row(event.position().toPoint())
        if target > source:
            target -= 1  # the dragged row leaves its old place first
        event.setDropAction(Qt.DropAction.IgnoreAction)  # the queue, not Qt, moves the row
        event.accept()
        if target != source:
            self.row_dropped.emit(source, target)


def _bar(parent: QWidget) -> QProgressBar:
    bar = QProgressBar(parent)
    bar.setRange(0, 1000)
    bar.setTextVisible(True)
    bar.setMaximumHeight(18)
    return bar


class ProgressDelegate(QStyledItemDelegate):
    """Draws a row's progress (ProgressRole: 0..1000) as a progress bar, in the view's normal
    (coalesced) repaint instead of a widget per row."""

    def paint(self, painter, option, index) -> None:
        value = index.data(ProgressRole)
        if value is None:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionProgressBar()
        opt.rect = QRect(option.rect.adjusted(2, 2, -2, -2))
        opt.minimum, opt.maximum, opt.progress = 0, 1000, int(value)
        opt.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        opt.textVisible = True
        opt.textAlignment = Qt.AlignmentFlag.AlignCenter
        opt.state = option.state | QStyle.StateFlag.State_Horizontal
        opt.palette = option.palette
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, opt, painter, option.widget)


class QueuePanel(QWidget):
    """Jobs table (rows can be dragged to reorder) + Start/Pause/Resume/Cancel/Remove/Up/Down +
    overall progress."""

    #: The user asked to queue the current sample (the main window decides how).
    add_requested = Signal()
    #: A job row was double-clicked: show that sample.
    job_activated = Signal(object)

    def __init__(self, queue: BatchQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.table = JobTable(0, len(COLUMNS), self)
        t = self.table
        t.setHorizontalHeaderLabels(COLUMNS)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.verticalHeader().hide()
        t.verticalHeader().setDefaultSectionSize(22)
        header = t.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for col in (1, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        t.itemSelectionChanged.connect(self._update_buttons)
        t.cellDoubleClicked.connect(self._on_double_click)
        t.setItemDelegateForColumn(2, ProgressDelegate(t))
        t.row_dropped.connect(self._move_row)

        def button(text: str, tip: str, slot) -> QPushButton:
            b = QPushButton(text, self)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            return b

        self.add_button = button("Add sample", "Queue the selected sample", self.add_requested.emit)
        self.start_button = button("Start", "Classify the queued samples, one after another", self.queue.start)
        self.pause_button = button("Pause", "Stop after the current image; Resume carries on", self.queue.pause)
        self.resume_button = button("Resume", "Carry on after a pause", self.queue.resume)
        self.cancel_button = button("Cancel", "Stop the running sample (what is classified is kept; "
                                              "Start resumes where it stopped)", self._cancel)
        self.remove_button = button("Remove", "Take the selected sample out of the queue", self._remove)
        self.up_button = button("▲", "Move up", lambda: self._move(-1))
        self.down_button = button("▼", "Move down", lambda: self._move(+1))
        for b in (self.up_button, self.down_button):
            b.setMaximumWidth(32)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.start_button, self.pause_button, self.resume_button, self.cancel_button,
                  self.remove_button, self.up_button, self.down_button):
            buttons.addWidget(b)
        buttons.addSpacing(12)

        self.overall_bar = _bar(self)
        self.overall_bar.setMinimumWidth(160)
        self.overall_label = QLabel("Queue empty", self)
        theme.style(self.overall_label, Tone.MUTED)
        self.overall_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons.addWidget(QLabel("Overall", self))
        buttons.addWidget(self.overall_bar, 1)
        buttons.addWidget(self.overall_label, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 4)
        layout.setSpacing(3)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)

        self._rows: list[BatchJob] = []
        self._overall_at = 0.0
        self.can_add = lambda: True
        #: Asked before Cancel (or Remove of the running sample) stops a classification; the
        #: window sets it to its confirmation dialog.
        self.confirm_stop: Callable[[], bool] = lambda: True
        queue.changed.connect(self.refresh)
        queue.progress.connect(self.update_progress)
        queue.running_changed.connect(lambda _running: self.refresh())
        theme.follow(self, self._palette_changed)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def selected_job(self) -> BatchJob | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        row = rows[0].row()
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def _cancel(self) -> None:
        if self.confirm_stop():
            self.queue.cancel()

    def _remove(self) -> None:
        job = self.selected_job()
        if job is not None and (job.state != RUNNING or self.confirm_stop()):
            self.queue.remove(job)

    def _move(self, delta: int) -> None:
        job = self.selected_job()
        if job is not None and self.queue.move(job, delta):
            self.select_job(job)

    def _move_row(self, source: int, target: int) -> None:
        if 0 <= source < len(self._rows):
            job = self._rows[source]
            if self.queue.move_to(job, target):
                self.select_job(job)

    def select_job(self, job: BatchJob) -> None:
        if job in self._rows:
            self.table.selectRow(self._rows.index(job))

    def _on_double_click(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._rows):
            self.job_activated.emit(self._rows[row])

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        """Rebuild the rows (the queue changed shape or state)."""
        selected = self.selected_job()
        jobs = list(self.queue.jobs)
        t = self.table
        t.setRowCount(len(jobs))
        self._rows = jobs
        for row, job in enumerate(jobs):
            t.setItem(row, 0, QTableWidgetItem(job.label))
            t.item(row, 0).setToolTip(str(getattr(job.sample, "folder", "") or ""))
            for col in (1, 2, 3, 4):
                if t.item(row, col) is None:
                    t.setItem(row, col, QTableWidgetItem(""))
        if selected in jobs:
            t.selectRow(jobs.index(selected))
        self.update_progress(force=True)

    def _status_text(self, job: BatchJob) -> str:
        if job.state == RUNNING and self.queue.paused:
            return "Paused"
        if job.state == RUNNING and job.message:  # the lab database is down: waiting for it
            return "Waiting for the lab database"
        if job.state == RUNNING and job.total == 0:
            return "Starting…"
        text = job.state.label
        if job.state.finished and job.message:
            text += f" — {job.message}"
        return text

    def update_progress(self, force: bool = False) -> None:
        """Refresh the numbers (called on every drain while running)."""
        t = self.table
        for row, job in enumerate(self._rows):
            if row >= t.rowCount():
                break
            total = job.total or len(job.paths)
            done = total if job.state == DONE else job.done
            bar = t.item(row, 2)
            bar.setData(ProgressRole, int(1000 * done / total) if total else 0)
            bar.setText(f"{done}/{total}" + (f"  ({job.errors} err)" if job.errors else ""))
            status = t.item(row, 1)
            status.setText(self._status_text(job))
            # the palette's text colour (no foreground of its own) but for a failure: black was
            # unreadable on a dark palette
            status.setData(Qt.ItemDataRole.ForegroundRole, theme.qcolor(Tone.ERROR) if job.state == FAILED else None)
            if job.state in (FAILED, RUNNING):
                status.setToolTip(job.message)
            rate = job.rate
            t.item(row, 3).setText("—" if rate is None else f"{rate:.1f}")
            t.item(row, 4).setText(format_eta(job.eta_s) if job.state == RUNNING else "")
        done, total = self.queue.totals()
        now = time.monotonic()
        if force or now - self._overall_at >= OVERALL_REFRESH_S or done == total:
            self._overall_at = now
            self.overall_bar.setValue(int(1000 * done / total) if total else 0)
            self.overall_bar.setFormat(f"{done}/{total}")
        current = self.queue.current_job()
        if not self._rows:
            text = "Queue empty — select a sample and press Classify (or Add sample)."
        elif current is not None:
            rate = current.rate
            left = sum((j.total or len(j.paths)) - j.done for j in self._rows if j.state in (QUEUED, RUNNING))
            eta = None if rate is None else left / rate
            state = "Paused" if self.queue.paused else f"Classifying {current.label}"
            text = (f"{state} · {done}/{total}"
                    + (f" · {rate:.1f} images/s · ETA {format_eta(eta)}" if rate is not None else ""))
        else:
            waiting = sum(1 for j in self._rows if j.state == QUEUED)
            # "done", not "classified": unreadable files are done too, and the summary does not count them
            text = f"{done}/{total} images done" + (f" · {waiting} sample(s) waiting" if waiting else "")
        self.overall_label.setText(text)
        self._update_buttons()

    def _palette_changed(self) -> None:
        self.update_progress(force=True)

    def _update_buttons(self) -> None:
        q = self.queue
        has_running = q.current_job() is not None
        restartable = any(j.state in RESTARTABLE for j in self._rows)
        self.add_button.setEnabled(bool(self.can_add()))
        self.start_button.setEnabled(restartable and not has_running)
        self.pause_button.setEnabled(has_running and not q.paused)
        self.resume_button.setEnabled(has_running and q.paused)
        self.cancel_button.setEnabled(has_running)
        job = self.selected_job()
        self.remove_button.setEnabled(job is not None)
        index = self._rows.index(job) if job in self._rows else -1
        self.up_button.setEnabled(index > 0)
        self.down_button.setEnabled(0 <= index < len(self._rows) - 1)
