"""``ALLSight --self-test [--screenshot FILE]``: does the installed program work on this workstation?

For IT after an install (and for CI on the packaged executable): the real window opens on the
real platform plugin, loads the active model, opens a sample of a few generated smear-like
fields, classifies them through the same batch queue a technician's click uses, and exits 0
with one line saying what ran (or 1 with the reason). Everything it writes — settings, the
result database, logs, the sample — goes to a temporary folder that is removed afterwards: the
user's real folders are never touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

#: Generated fields in the self-test's sample.
N_IMAGES = 4
TIMEOUT_S = 180.0


def _write_fields(folder: Path, n: int) -> None:
    """Smear-like 256 px fields: a pink background, pale red cells, one dark violet nucleus."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        bgr = np.full((256, 256, 3), (205, 190, 230), np.uint8)
        for _ in range(14):
            centre = tuple(int(v) for v in rng.integers(20, 236, 2))
            cv2.circle(bgr, centre, int(rng.integers(12, 18)), (150, 120, 215), -1)
        cv2.circle(bgr, (128, 128), 34, (190, 150, 170), -1)
        cv2.ellipse(bgr, (128 + 4 * i, 126), (24, 20), 15 * i, 0, 360, (120, 40, 80), -1)
        cv2.imwrite(str(folder / f"self-test-{i + 1}.png"), cv2.GaussianBlur(bgr, (3, 3), 0))


def _isolate(scratch: Path) -> None:
    for kind in ("config", "data", "cache", "log"):
        os.environ[f"ALLSIGHT_{kind.upper()}_DIR"] = str(scratch / kind)
    os.environ["ALLSIGHT_NO_WARMUP"] = "1"


def run_self_test(argv: list[str]) -> int:
    screenshot = None
    if "--screenshot" in argv:
        index = argv.index("--screenshot")
        if index + 1 >= len(argv):
            print("self-test: --screenshot needs a file name", file=sys.stderr)
            return 2
        screenshot = Path(argv[index + 1]).resolve()
    with tempfile.TemporaryDirectory(prefix="allsight-self-test-") as tmp:
        scratch = Path(tmp)
        _isolate(scratch)
        try:
            return _run(scratch, screenshot)
        except Exception as exc:  # the self-test reports every failure in one line
            print(f"self-test FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1


def _run(scratch: Path, screenshot: Path | None) -> int:
    from engine.core.logging_setup import setup_logging

    setup_logging()
    from PySide6.QtCore import QElapsedTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from engine.core.jobs import JobState
    from gui.app import create_application
    from gui.main_window import MainWindow
    from gui.settings import load_settings
    from gui.workbench import PENDING

    folder = scratch / "sample"
    _write_fields(folder, N_IMAGES)
    app = create_application([])
    started = time.monotonic()
    window = MainWindow(load_settings())
    window.show()
    clock = QElapsedTimer()
    clock.start()

    from PySide6.QtCore import QTimer

    from gui import errors

    shown: list[str] = []

    def on_error(message: str, _details: str) -> None:
        # An error dialog would wait for a person: note the message and close the dialog.
        shown.append(message)
        QTimer.singleShot(0, lambda: (box := QApplication.activeModalWidget()) is not None and box.close())

    errors.add_listener(on_error)

    def pump_until(condition, what: str) -> None:
        while not condition():
            if shown:
                raise RuntimeError(shown[0])
            if clock.elapsed() > TIMEOUT_S * 1000:
                raise TimeoutError(f"{what} did not happen within {TIMEOUT_S:.0f} s")
            app.processEvents()
            time.sleep(0.01)

    try:
        pump_until(lambda: window.history_loaded, "the window's start")
        window.open_paths([folder])
        panel = window.samples_panel
        pump_until(lambda: len(panel.samples) == 1 and all(im.state != PENDING for im in panel.samples[0].images),
                   "opening the sample")
        job = window.classify_current()
        if job is None:
            raise RuntimeError("the sample could not be queued: " + (window.statusBar().currentMessage() or "no reason"))
        pump_until(lambda: not window.batch.running and job.state in (JobState.DONE, JobState.FAILED,
                                                                        JobState.CANCELLED), "classifying")
        if job.state != JobState.DONE:
            raise RuntimeError(f"the batch ended {job.state}: {job.message}")
        rows = window.results_panel.model.rowCount()
        if rows != N_IMAGES:
            raise RuntimeError(f"{rows} results shown for {N_IMAGES} images")
        if screenshot is not None:
            for _ in range(20):  # let the results table paint
                app.processEvents()
                time.sleep(0.02)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(screenshot)):
                raise RuntimeError(f"the screenshot could not be written to {screenshot}")
        card = window.model_card
        print(f"self-test passed: {rows} images classified by {card.id} {card.version} in "
              f"{time.monotonic() - started:.1f} s (Qt platform {QGuiApplication.platformName()})")
        return 0
    finally:
        errors.remove_listener(on_error)
        window.shutdown()
        window.deleteLater()
        QApplication.processEvents()
