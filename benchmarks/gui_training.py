"""The desktop app's event loop while the retraining wizard trains (issue 14): run by
``benchmarks/gui_responsiveness.py --training`` (see there).

Starts the real window and the real wizard on synthetic class folders (``per_class`` images of
each class), fine-tunes the active model (the shipped ResNet-18 where installed) in the wizard's
child process, and records a 10 ms ``QTimer`` from the click on *Next* into the Training step
until the run is done. The largest gap between two ticks is the longest the event loop was
blocked while the child process kept both cores busy.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from pathlib import Path

TICK_MS = 10


def run_training(tmp: Path, per_class: int = 20, epochs: int = 2) -> dict:
    for kind in ("config", "log", "data", "cache"):
        os.environ[f"ALLSIGHT_{kind.upper()}_DIR"] = str(tmp / kind)
    from PySide6.QtCore import QTimer

    from engine.models.library import ModelLibrary
    from gui.app import create_application
    from gui.main_window import DEFAULT_SIZE, MainWindow
    from gui.retrain_wizard import RetrainWizard
    from gui.settings import Settings
    from tests.engine.training.test_lab_data import class_folders

    folders = class_folders(tmp / "lab-labelled", per_class=per_class)
    app = create_application([])
    win = MainWindow(Settings())
    win.resize(*DEFAULT_SIZE)
    win.show()
    wizard = RetrainWizard(ModelLibrary(verify_network=False), win.store, win.workers, "bench", win)
    wizard.show()

    def pump_until(condition, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                raise TimeoutError("the wizard did not reach the expected state")
            app.processEvents()
            time.sleep(0.002)

    pump_until(lambda: win.history_loaded, 30)
    wizard.data_page.add_folder(folders)
    pump_until(wizard.data_page.isComplete, 120)
    wizard.next()
    wizard.settings_page.epochs_spin.setValue(epochs)
    page = wizard.training_page
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    done: dict[str, float] = {}
    poll = QTimer()
    poll.setInterval(50)
    poll.timeout.connect(lambda: (done.setdefault("t", time.perf_counter()), app.quit())
                         if page.state in ("done", "failed", "cancelled") else None)
    timer.start()
    poll.start()
    start = time.perf_counter()
    ticks.append(start)
    QTimer.singleShot(0, wizard.next)  # into Training: the child process starts
    app.exec()
    timer.stop()
    poll.stop()
    end = done["t"]
    gaps = sorted((b - a) * 1000 for a, b in itertools.pairwise(ticks) if b <= end)
    result = {"state": page.state, "message": page.message, "seconds": end - start,
              "train_images": len(wizard.data_page.survey.train) if wizard.data_page.survey else 0,
              "epochs": epochs, "max_gap_ms": gaps[-1], "p99_gap_ms": gaps[int(0.99 * (len(gaps) - 1))],
              "median_gap_ms": statistics.median(gaps), "gaps_over_50_ms": sum(g > 50 for g in gaps),
              "model": win.model_label.text()}
    wizard.reject()
    win.close()
    return result


def report(r: dict) -> None:
    print(f"training in the wizard ({r['model']}): {r['train_images']} images x {r['epochs']} epochs, "
          f"{r['state']} in {r['seconds']:.1f} s {r['message']}")
    print(f"event loop during the training: max gap {r['max_gap_ms']:.1f} ms, p99 {r['p99_gap_ms']:.1f} ms, "
          f"median {r['median_gap_ms']:.1f} ms, {r['gaps_over_50_ms']} gap(s) over 50 ms (target: none) -> "
          f"{'PASS' if r['max_gap_ms'] <= 50 else 'FAIL'}")
