"""The retraining wizard's *Training* step: the job (:mod:`engine.training.job`) runs in a child
process (``main.py training-job RUN_DIR``; this process never imports torch), and this page
follows its JSON-lines output — a live plot of training loss and validation accuracy, the
epoch, the time left — and offers Pause/Resume and Cancel (control files the job checks
between progress records). A run interrupted by a crash or a closed app is resumed by starting
the job again on the same folder: it continues from its last epoch's checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QPointF, QProcess
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget, QWizardPage

from engine.training import job

ROOT = Path(__file__).resolve().parents[1]


def job_command(run_dir: Path) -> tuple[str, list[str]]:
    """The program and arguments that run the job: this interpreter on main.py, or the packaged
    executable itself (which dispatches ``training-job`` to the CLI)."""
    if getattr(sys, "frozen", False):
        return sys.executable, ["training-job", str(run_dir)]
    return sys.executable, [str(ROOT / "main.py"), "training-job", str(run_dir)]


class LossPlot(QWidget):
    """Training loss (per logged batch) and validation accuracy (per epoch), against epochs."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(160)
        self.loss: list[tuple[float, float]] = []  # (epoch position, loss)
        self.val_acc: list[tuple[float, float]] = []  # (epoch, accuracy)
        self.epochs = 1

    def add(self, event: dict) -> None:
        m = event.get("metrics", {})
        if event.get("phase") == "train" and "loss" in m:
            self.epochs = int(m.get("epochs", self.epochs))
            steps = max(1, int(event["total"]) // max(1, self.epochs))
            self.loss.append((event["step"] / steps, float(m["loss"])))
        elif event.get("phase") == "validate":
            self.val_acc = [p for p in self.val_acc if p[0] != m["epoch"]] + [(float(m["epoch"]), float(m["val_acc"]))]
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h, pad = self.width(), self.height(), 24
        loss_color, acc_color = QColor(200, 80, 40), QColor(40, 120, 200)
        painter.setPen(self.palette().text().color())
        painter.drawRect(pad, 6, w - 2 * pad, h - pad - 6)
        painter.drawText(pad, h - 6, f"0 … {self.epochs} epochs")
        painter.setPen(loss_color)
        painter.drawText(pad + 4, 20, "— training loss")
        painter.setPen(acc_color)
        painter.drawText(pad + 110, 20, "— validation accuracy (0–100 %)")
        top_loss = 1.15 * max([v for _, v in self.loss] + [1e-6])  # a margin above the highest loss

        def point(x: float, y: float) -> QPointF:
            return QPointF(pad + (w - 2 * pad) * x / max(1, self.epochs), 6 + (h - pad - 6) * (1 - y))

        for series, color, scale in ((self.loss, loss_color, top_loss), (self.val_acc, acc_color, 1.0)):
            painter.setPen(QPen(color, 2))
            pts = [point(x, y / scale) for x, y in series]
            for a, b in zip(pts, pts[1:], strict=False):
                painter.drawLine(a, b)
        painter.end()


class TrainingPage(QWizardPage):
    def __init__(self):
        super().__init__()
        self.setTitle("Training")
        self.setSubTitle("The model trains in a separate process. You can pause it, cancel it, or close the "
                         "wizard: it resumes from its last epoch the next time the wizard opens.")
        self.run_dir: Path | None = None
        self.process: QProcess | None = None
        self.state = ""
        self.message = ""
        self._buffer = b""
        self.plot = LossPlot(self)
        self.status_label = QLabel("Not started", self)
        self.status_label.setWordWrap(True)
        self.pause_button = QPushButton("Pause", self)
        self.cancel_button = QPushButton("Cancel training", self)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel_training)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)

    # ------------------------------------------------------------------ the process
    def start(self, run_dir: Path) -> None:
        """Start (or resume) the job in ``run_dir``; earlier events are replotted first."""
        self.run_dir = run_dir
        for path in (run_dir / job.PAUSE_FILE, run_dir / job.CANCEL_FILE):
            path.unlink(missing_ok=True)
        for event in job.read_events(run_dir):
            self.plot.add(event)
        self.state, self.message = "running", ""
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._finished)
        program, args = job_command(run_dir)
        process.start(program, args)
        self.process = process
        self.status_label.setText("Starting the training process…")
        self._update_buttons()
        self.completeChanged.emit()

    def _read_output(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not an event (a library's message)
            self.show_event(event)

    def show_event(self, event: dict) -> None:
        self.plot.add(event)
        m = event.get("metrics", {})
        phase = event.get("phase", event.get("event", ""))
        if phase == "train":
            eta = m.get("eta_s")
            left = f", about {max(1, round(eta / 60))} min left" if eta else ""
            self.status_label.setText(f"Epoch {m.get('epoch')} of {m.get('epochs')}: loss {m.get('loss', 0):.3f}{left}")
        elif phase == "validate":
            self.status_label.setText(f"Epoch {m['epoch']}: validation accuracy {m['val_acc'] * 100:.1f} %")
        elif phase in ("calibrate", "fit out-of-distribution detector", "test", "save", "compare"):
            self.status_label.setText(f"Finishing: {phase}…")
        elif phase == "data":
            self.status_label.setText(f"{event['train']} training and {event['val']} validation images"
                                      + (f", {event['replay']} development images replayed" if event["replay"] else ""))

    def _finished(self, _code: int, _status) -> None:
        state = job.read_state(self.run_dir) if self.run_dir else {}
        self.state = state.get("state", "failed")
        if self.state in ("running", "paused"):
            self.state = "failed"  # the process died without saying so
            self.message = "the training process stopped unexpectedly; open the wizard again to resume it"
        else:
            self.message = state.get("message", "")
        texts = {"done": "Training finished. Next: compare the new model with the current one.",
                 "cancelled": "Training cancelled. Nothing was changed.",
                 "failed": f"Training failed: {self.message}. The active model, results and reviews are unchanged."}
        self.status_label.setText(texts.get(self.state, self.state))
        self.process = None
        self._update_buttons()
        self.completeChanged.emit()

    # ------------------------------------------------------------------ controls
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def paused(self) -> bool:
        return self.run_dir is not None and (self.run_dir / job.PAUSE_FILE).exists()

    def toggle_pause(self) -> None:
        if self.run_dir is None or not self.running():
            return
        pause = self.run_dir / job.PAUSE_FILE
        if pause.exists():
            pause.unlink()
            self.status_label.setText("Resuming…")
        else:
            pause.touch()
            self.status_label.setText("Paused (after the current batch).")
        self._update_buttons()

    def cancel_training(self) -> None:
        if self.run_dir is not None and self.running():
            (self.run_dir / job.CANCEL_FILE).touch()
            (self.run_dir / job.PAUSE_FILE).unlink(missing_ok=True)
            self.status_label.setText("Cancelling…")

    def stop(self, msecs: int = 10_000) -> None:
        """Leave the job resumable: kill the process (the last epoch's checkpoint stays)."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.waitForFinished(msecs)

    def _update_buttons(self) -> None:
        running = self.running()
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.pause_button.setText("Resume" if self.paused() else "Pause")

    def isComplete(self) -> bool:  # noqa: N802 (Qt's name)
        return self.state == "done"


__all__ = ["LossPlot", "TrainingPage", "job_command"]
